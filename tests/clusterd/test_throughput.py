"""Common visibility's measuring and keeping: real counters of ``lo``, the rings, the messages between servers."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from clusterd import config as config_module
from clusterd.protocol import Visibility, decode, encode
from clusterd.throughput import DAY_MINUTES, HOUR, Board, Meter, Rings, counters, wire_interfaces
from confmerge import ConfError, parse

from .harness import FIXTURES


def _traffic(megabytes: int) -> None:
    """Send ``megabytes`` through the loopback interface (a real TCP connection on 127.0.0.1)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def drain() -> None:
            connection, _ = server.accept()
            with connection:
                while connection.recv(1 << 20):
                    pass
        reader = threading.Thread(target=drain)
        reader.start()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            chunk = b"x" * (1 << 20)
            for _ in range(megabytes):
                client.sendall(chunk)
        reader.join(timeout=10)


def test_the_meter_reads_lo_s_counters_as_bits_per_second_down_and_up() -> None:
    assert counters("lo") is not None and counters("no-such-if0") is None
    meter = Meter()
    assert meter.read(["lo"], time.time()) is None  # the first reading has nothing to compare with
    started = time.time()
    _traffic(32)
    time.sleep(0.05)
    down, up = meter.read(["lo"], time.time()) or (0.0, 0.0)
    seconds = time.time() - started
    assert down >= 32 * 8 * (1 << 20) / seconds / 1.5  # what lo sent, and it also received it
    assert up >= 32 * 8 * (1 << 20) / seconds / 1.5
    assert meter.problem == ""
    meter.read(["lo", "nosuch0"], time.time())
    assert meter.problem == "interface nosuch0 not found"
    assert Meter().read([], time.time()) is None


def test_what_an_interface_transmits_is_downlink_and_what_it_receives_uplink(tmp_path: Path) -> None:
    """Counters as the kernel lays them out (a directory per interface), so the direction is checked exactly."""
    def counters_now(rx: int, tx: int) -> None:
        for name, value in (("rx_bytes", rx), ("tx_bytes", tx)):
            path = tmp_path / "en0o3" / "statistics" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{value}\n")
    meter = Meter(tmp_path)
    counters_now(1_000, 50_000)
    assert meter.read(["en0o3"], 100.0) is None
    counters_now(1_000 + 125_000, 50_000 + 1_250_000)  # 1 Mbit up, 10 Mbit down over 2 s
    assert meter.read(["en0o3"], 102.0) == (5_000_000.0, 500_000.0)
    counters_now(10, 10)  # the interface was re-created: its counters start over, that reading counts nothing
    assert meter.read(["en0o3"], 103.0) == (0.0, 0.0)


def test_a_backup_s_wires_give_their_access_interfaces() -> None:
    assert wire_interfaces(parse((FIXTURES / "bqn1-v1.conf").read_text(), "bqn1-v1.conf")) == ("en0o3",)
    assert wire_interfaces(None) == ()


def test_rings_keep_an_hour_of_seconds_and_a_day_of_minute_averages_with_no_data_as_none() -> None:
    rings = Rings()
    start = 1_800_000_000 - 1_800_000_000 % 60
    for t in range(start, start + 120):
        if not start + 30 <= t < start + 40:  # ten seconds with no sample: the server was down
            rings.add(t, 1000.0 * (t - start), 10.0)
    step, samples = rings.series(60, start + 59)
    assert step == 1 and len(samples) == 60
    assert samples[0] == (start, 0.0, 10.0) and samples[35] == (start + 35, None, None)
    rings.add(start + 5, 999999.0, 1.0)  # a resend of a second it holds changes nothing
    assert rings.second(start + 5) == (start + 5, 5000.0, 10.0)
    step, minutes = rings.series(2 * HOUR, start + 119)
    assert step == 60 and len(minutes) == 120
    assert minutes[-1] == (start + 60, 1000.0 * sum(range(60, 120)) / 60, 10.0)
    assert minutes[-2] == (start, 1000.0 * (sum(range(0, 30)) + sum(range(40, 60))) / 50, 10.0)
    assert minutes[0][1] is None  # nothing two hours ago
    assert len(rings.series(10 * 86400, start)[1]) == DAY_MINUTES  # a day at most
    later = start + HOUR + 5  # an hour on, the slot is reused: the old second reads as no data
    rings.add(later, 1.0, 1.0)
    assert rings.second(start + 5) == (start + 5, None, None) and rings.second(later) == (later, 1.0, 1.0)
    assert rings.newest(later + 2) == (later, 1.0, 1.0) and rings.newest(later + 10) is None


def test_samples_travel_as_a_typed_message_the_whole_hour_on_a_new_connection_then_only_the_new() -> None:
    sender, receiver = Board(0), Board(1)
    now = 1_800_000_000
    for t in range(now - 2 * HOUR, now + 1):
        sender.rings[0].add(t, 8000.0, 800.0)
    first = sender.message(1, connection=1, now=now)
    assert len(first.seconds) == HOUR and len(first.minutes) == 60
    wired = decode(encode(first)[4:])
    assert isinstance(wired, Visibility) and wired == first
    receiver.receive(wired)
    assert receiver.series([0], 2 * HOUR, {0: True}, now)["servers"][0]["samples"][0][1:] == [8000.0, 800.0]
    sender.rings[0].add(now + 1, 16000.0, 1600.0)
    second = sender.message(1, connection=1, now=now + 1)
    assert [s[0] for s in second.seconds] == [now + 1] and second.minutes == []
    assert len(sender.message(1, connection=2, now=now + 1).seconds) == HOUR  # reconnected: all again
    receiver.receive(second)
    assert receiver.current(0, True, now + 1) == [16000.0, 1600.0]
    assert receiver.current(0, False, now + 1) is None  # down: no data, whatever it sent before
    bad = Visibility(id=0, hostname="h", version="v", web="", interfaces=[], problem="",
                     seconds=[[now + 2, -1, 5], [now + 3, "x", 1], [now + 4, 1.0], [now + 5, float("nan"), 1.0]],
                     minutes=[[7, 1.0, 1.0]])
    receiver.receive(bad)
    assert all(receiver.rings[0].second(t)[1] is None for t in range(now + 2, now + 6))
    receiver.forget([])
    assert set(receiver.rings) == {1}


def test_the_cluster_file_s_web_and_visibility_sections(tmp_path: Path) -> None:
    path = tmp_path / "cluster.yaml"
    base = "id: 1\naddress: 10.0.0.2\n"
    path.write_text(base)
    assert config_module.load(path).web is None and config_module.load(path).interfaces is None
    path.write_text(base + "web: {}\nvisibility:\n  interfaces: [lo, eth0]\n")
    loaded = config_module.load(path)
    assert loaded.web is not None and (loaded.web.host, loaded.web.port) == ("10.0.0.2", 8443)
    assert loaded.interfaces == ("lo", "eth0")
    path.write_text(base + "web:\n  enabled: false\n  listen: 127.0.0.1:9\n")
    assert config_module.load(path).web is None
    path.write_text(base + "web:\n  listen: localhost:8443\nvisibility:\n  interfaces: [../etc]\n")
    with pytest.raises(ConfError) as error:
        config_module.load(path)
    assert [(d.line, d.message.split(" must")[0]) for d in error.value.diagnostics] == [
        (4, "web.listen"), (6, "visibility.interfaces")]


def test_a_primary_answers_a_secondary_with_thinned_series_averaged_with_gaps_kept() -> None:
    board = Board(0)
    now = 1_000_000
    for t in range(now - HOUR + 1, now + 1):
        if t % 600 >= 300:  # five minutes of data, five without, in turn
            board.rings[0].add(t, 100.0, float(t % 2) * 10)
    whole = board.series([0], HOUR, {0: True}, now=now)
    thin = board.series([0], HOUR, {0: True}, now=now, points=300)
    samples = thin["servers"][0]["samples"]
    assert len(whole["servers"][0]["samples"]) == HOUR and whole["step"] == 1
    assert len(samples) == 300 and thin["step"] == 12
    assert samples[-1][0] == now, "each thinned sample is stamped with the last second it covers"
    with_data = [s for s in samples if s[1] is not None]
    assert with_data and all(s[1] == 100.0 and 0 <= s[2] <= 10 for s in with_data), "averages of what had data"
    assert sum(s[2] == 5.0 for s in with_data) > len(with_data) / 2
    assert any(s[1] is None for s in samples), "a stretch with no data stays no data"


def test_a_settled_secondary_samples_every_second_riding_the_primarys_heartbeats(cluster_factory) -> None:
    """A settled secondary takes its sample in the turn of the primary's first heartbeat of each second (no wake-up of
    its own): no second goes missing, on the secondary itself and on the primary's board."""
    from clusterd.client import ask

    cluster = cluster_factory([0, 1, 2])
    for i in cluster.ids:
        with open(cluster.config(i), "a") as file:
            file.write("visibility:\n  interfaces: [lo]\n")
    cluster.start_all()
    cluster.wait("complete", lambda: cluster.complete() or None, 30)
    time.sleep(6)
    for asked in (2, 0):
        reply = ask(config_module.load(cluster.config(asked)), {"type": "throughput", "server": 2, "seconds": 12},
                    timeout=5)
        samples = reply["throughput"]["servers"][0]["samples"]
        now = int(time.time())
        known = {t for t, down, up in samples if down is not None and up is not None}
        window = range(now - 5, now - 1)
        assert set(window) <= known, (asked, sorted(known), now, cluster.log(2)[-2000:])
