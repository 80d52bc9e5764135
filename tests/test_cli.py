"""How both programs start and end (``confmerge.cli.run_program``, ``guarded``, the console entry points):
exit statuses, closed pipes, Ctrl-C, and arguments that are not quite right."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from clusterd.cli import main as clusterd_main
from confmerge.cli import main as confmerge_main

from .conftest import FIXTURES, ROOT, run_confmerge

A, B = FIXTURES / "bqn0-v1.conf", FIXTURES / "bqn1-v1.conf"
SCRIPTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


# -- a closed pipe (diff(1): output cut short is trouble, never "no difference")


@pytest.mark.parametrize("fmt", ["text", "json", "yaml"])
def test_a_closed_pipe_is_trouble_not_sameness(fmt: str):
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written: every write fails
    try:
        done = subprocess.run([sys.executable, "-m", "confmerge", "diff", "--format", fmt, str(A), str(B)],
                              stdout=write, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write)
    assert done.returncode == 2, done.stderr
    assert done.stderr == ""  # no traceback, no "Exception ignored" from the interpreter's exit


@pytest.mark.parametrize("fmt", ["text", "json", "yaml"])
def test_head_never_makes_differing_files_look_equal(fmt: str):
    command = f"set -o pipefail; {sys.executable} -m confmerge diff --format {fmt} {A} {B} | head -1 >/dev/null"
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60)
    assert done.returncode in (1, 2), done.stderr  # 1 when it all fit in the pipe before head left, else 2
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", [["diff", "--format", "json"], ["diff"], ["parse"], ["parse", "--format", "yaml"],
                                     ["rules"]])
def test_a_pipe_closed_mid_write_is_trouble_also_unbuffered(command: list[str], tmp_path: Path):
    """Under ``PYTHONUNBUFFERED`` a write cut short by the reader leaving was dropped without an error:
    ``diff --format json A B | head -1`` exited 1, and ``parse`` 0, with most of the output lost."""
    sys.path.insert(0, str(ROOT / "bench"))
    from generate import pair  # type: ignore[import-not-found]
    old, new = tmp_path / "a.conf", tmp_path / "b.conf"
    for path, text in zip((old, new), pair(8000, 0.5)):
        path.write_text(text)
    files = [str(old), str(new)] if command[0] == "diff" else [str(old)]
    read, write = os.pipe()
    child = subprocess.Popen([sys.executable, "-m", "confmerge", *command, *files], stdout=write,
                             stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    os.close(write)
    try:
        assert os.read(read, 100)  # the output has begun, and is far larger than a pipe holds
    finally:
        os.close(read)
    assert child.stderr is not None
    errors = child.stderr.read()
    assert child.wait(timeout=60) == 2, errors
    assert errors == ""


# -- Ctrl-C while the program is still starting


@pytest.mark.parametrize("program", ["confmerge", "clusterd"])
def test_ctrl_c_while_starting_prints_no_traceback(program: str, tmp_path: Path):
    """SIGINT arrives while the console entry point is still importing the program: ``-X importtime`` tells
    when the engine's first module is done, and the rest of the engine is still to come."""
    module = "confmerge.diagnostics"
    entry_module, function = SCRIPTS[program].split(":")
    code = f"import sys; from {entry_module} import {function} as entry; sys.argv[0] = {program!r}; sys.exit(entry())"
    arguments = ["check", str(A)] if program == "confmerge" else ["-c", str(tmp_path / "cluster.yaml"), "status"]
    child = subprocess.Popen([sys.executable, "-X", "importtime", "-c", code, *arguments], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stderr is not None
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = child.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.split("|")[-1].strip() == module:
                child.send_signal(signal.SIGINT)
                break
        else:
            pytest.fail(f"{module} was not imported within 60 s")
        rest = child.communicate(timeout=60)[1]
    finally:
        child.kill()
        child.wait()
    errors = "".join(line for line in [*lines, rest] if not line.startswith("import time:"))
    assert "Traceback" not in errors and "KeyboardInterrupt" not in errors, errors
    assert child.returncode == 130, errors


def test_both_console_entry_points_start_through_the_launcher():
    assert SCRIPTS == {"confmerge": "confmerge_launch:confmerge", "clusterd": "confmerge_launch:clusterd"}


# -- options: never abbreviated; an unknown one named with its subcommand's usage


def _refused(main, argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["diff", "--scop", "cluster", str(A), str(B)],
    ["merge", "--dry", str(A), str(B)],
    ["rules", "--rul", str(A)],
    ["parse", "--form", "yaml", str(A)],
])
def test_confmerge_refuses_abbreviated_options(argv: list[str], capsys):
    err = _refused(confmerge_main, argv, capsys)
    assert f"usage: confmerge {argv[0]} " in err and f"unrecognized option: {argv[1]} (did you mean" in err


@pytest.mark.parametrize("argv", [["status", "--js"], ["init", "--ad", "1.2.3.4", "--id", "0", "--address", "1.2.3.4"]])
def test_clusterd_refuses_abbreviated_options(argv: list[str], capsys):
    err = _refused(clusterd_main, argv, capsys)
    assert f"usage: clusterd {argv[0]} " in err and f"unrecognized option: {argv[1]}" in err


def test_a_typo_in_an_option_names_the_option_not_a_file(capsys):
    err = _refused(confmerge_main, ["diff", "--scpoe", "cluster", str(A), str(B)], capsys)
    assert err.splitlines()[0].startswith("usage: confmerge diff ")
    assert err.splitlines()[-1] == "confmerge diff: error: unrecognized option: --scpoe (did you mean --scope?)"
    assert str(B) not in err


@pytest.mark.parametrize("main, argv, last", [
    (clusterd_main, ["diff", "--scop", "all"], "clusterd diff: error: unrecognized option: --scop"),
    (confmerge_main, ["diff", "--scpoe", "cluster", str(A)],
     "confmerge diff: error: unrecognized option: --scpoe (did you mean --scope?)"),
    (confmerge_main, ["merge", "--primay", str(A), str(A)],
     "confmerge merge: error: unrecognized option: --primay (did you mean --primary?)"),
])
def test_a_typo_is_named_even_when_the_word_after_it_fails_as_an_argument(main, argv: list[str], last: str, capsys):
    """The word after an unknown option went to an argument, and argparse complained about that word
    ("argument peer: invalid int value: 'all'") or a missing one, never naming the typo."""
    assert _refused(main, argv, capsys).splitlines()[-1] == last


def test_a_missing_input_has_no_made_up_position():
    result = run_confmerge("check", FIXTURES / "missing.conf")
    assert (result.returncode, result.stderr) == (2, f"{FIXTURES / 'missing.conf'}: error: no such file\n")


def test_an_unknown_option_before_the_subcommand_is_named(capsys, tmp_path: Path):
    err = _refused(clusterd_main, ["--conf", str(tmp_path / "c.yaml"), "status"], capsys)
    assert err.splitlines()[-1] == "clusterd: error: unrecognized option: --conf (did you mean --config?)"
    for spelled in (["-c", str(tmp_path / "c.yaml")], [f"-c{tmp_path / 'c.yaml'}"], [f"--config={tmp_path / 'c.yaml'}"]):
        assert clusterd_main([*spelled, "-v", "status"]) == 2  # understood: the cluster file is missing
        assert "no cluster file" in capsys.readouterr().err
