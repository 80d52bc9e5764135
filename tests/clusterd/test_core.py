"""The state core on a real, really full state directory (a 1 MB tmpfs; root only, as in CI)."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from confmerge import write_atomic

from clusterd.apply import apply_generation
from clusterd.config import load
from clusterd.core import Core
from clusterd.local import Cluster
from clusterd.sync import snapshot_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                                reason="a full disk is a real tmpfs here, and mounting one needs root")


def fill(directory: Path) -> Path:
    """Write until the file system says it is full."""
    filler = directory / "filler"
    with open(filler, "wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()
        except OSError as error:
            assert error.errno == errno.ENOSPC
    for small in range(64):  # the last blocks too, so that even a tiny head.json does not fit
        try:
            (directory / f"filler-{small}").write_bytes(b"\0" * 512)
        except OSError:
            break
    return filler


@pytest.mark.parametrize("restart", [False, True], ids=["running", "after a restart"])
def test_a_generation_written_to_the_backup_but_refused_by_a_full_disk_is_held_before_any_edit_is_recorded(
        tmp_path, restart):
    Cluster(tmp_path, [0, 1])
    config = load(tmp_path / "server1" / "cluster.yaml")
    history = config.state_dir / "sync"
    history.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "cftest-core", str(history)], check=True, timeout=15)
    try:
        asyncio.run(_scenario(config, restart))
    finally:
        subprocess.run(["umount", str(history)], capture_output=True, timeout=15)


async def _scenario(config, restart: bool) -> None:
    core = Core(config, lambda: None)
    await core.refresh_live(force=True)
    before = core.live
    first = core.make_generation([], before.cluster, before.digest)
    assert core.hold(first, before.cluster)

    assert "  downlink 100M\n" in before.cluster
    changed = snapshot_of(before.text.replace("  downlink 100M\n", "  downlink 150M\n", 1), config.backup)
    generation = core.make_generation([first], changed.cluster, changed.digest)
    applied = await asyncio.to_thread(apply_generation, core.history, config.backup, changed.cluster, generation,
                                      None, core.live)
    assert applied.written and "downlink 150M" in config.backup.read_text()

    filler = fill(config.state_dir / "sync")
    assert not core.hold(generation, changed.cluster, written=True), "the full disk refuses the head"
    assert core.head.id == first.id and core.unheld is not None

    if restart:  # the daemon restarts with the disk still full: what it held in memory is gone
        core = Core(config, lambda: None)
        await core.refresh_live(force=True)
        core.find_written()
        assert core.unheld is not None and core.unheld[0].id == generation.id, "found again: a kept child of the head"

    # the operator's write from a read made before the apply carries the old value back
    write_atomic(config.backup, before.text)
    await core.refresh_live(force=True)
    assert core.live.digest == first.digest
    assert core.record_edit() is None and core.head.id == first.id, "nothing is recorded against the older head"

    filler.unlink()
    edit = core.record_edit()
    assert edit is not None, "once the disk takes it, the generation is held and the operator's write is an edit of it"
    assert edit.parents == (generation.id,)
    assert core.head.id == edit.id and core.unheld is None
    assert "  downlink 100M\n" in core.history.text(edit.id)
