"""The election as a pure state machine, driven with explicit times."""

from __future__ import annotations

from dataclasses import replace

from clusterd.membership import SLOW, Membership, Role, claim_epoch
from clusterd.protocol import Heartbeat


def beat(sender: int, epoch: int = 0, primary: int | None = None, sees=(), head: str = "") -> Heartbeat:
    return Heartbeat(id=sender, epoch=epoch, primary=primary, uptime=1.0, sees=list(sees) or [sender], head=head,
                     generation=0, digest="", state="in sync", inbox="")


def node(me: int, peers: list[int], now: float = 0.0, epoch: int = 0) -> Membership:
    return Membership.start(me, peers, detection=1.5, hold=3.0, now=now, epoch=epoch)


def test_a_new_server_listens_before_it_takes_any_role():
    m = node(0, [1, 2])
    assert m.evaluate(0.5) is None
    assert m.role(2.9) is Role.JOINING
    assert m.evaluate(3.1) == 256, "the first epoch above 0 that is server 0's"
    assert m.role(3.1) is Role.PRIMARY


def test_a_new_server_that_has_heard_every_peer_does_not_wait():
    m = node(0, [1, 2])
    m.heartbeat(beat(1), 0.1)
    m.heartbeat(beat(2), 0.2)
    assert m.evaluate(0.2) == 256


def test_the_lowest_id_up_claims_once_it_has_heard_everyone():
    m = node(1, [0, 2])
    m.heartbeat(beat(2), 0.1)
    assert m.evaluate(0.2) is None
    m.heartbeat(beat(0), 0.3)
    assert m.evaluate(0.3) is None  # 0 is up and lower
    m.heartbeat(beat(0, epoch=1, primary=0), 0.4)
    assert (m.epoch, m.primary, m.role(0.4)) == (1, 0, Role.SECONDARY)


def test_the_next_lowest_claims_when_no_server_sees_the_primary():
    m = node(1, [0, 2])
    m.heartbeat(beat(0, 1, 0), 0.1)
    m.heartbeat(beat(2, 1, 0, sees=[0, 1, 2]), 0.1)
    m.lost(0, 5.0)
    assert m.evaluate(5.0) is None, "server 2 still sees the primary"
    m.heartbeat(beat(2, 1, 0, sees=[1, 2]), 5.1)
    assert m.evaluate(5.1) == 257
    assert m.role(5.1) is Role.PRIMARY


def test_silence_for_the_detection_time_is_down():
    m = node(1, [0])
    m.heartbeat(beat(0, 1, 0), 1.0)
    assert not m.expire(2.4)
    assert m.expire(2.6)
    assert m.evaluate(2.6) == 257


def test_a_returning_lower_id_waits_for_the_hold_time_and_the_peers_heads():
    m = node(0, [1, 2], now=100.0, epoch=1)
    m.heartbeat(beat(1, 2, 1, head="g7"), 100.1)
    m.heartbeat(beat(2, 2, 1, head="g7"), 100.1)
    assert m.role(100.2) is Role.SECONDARY
    assert m.evaluate(103.5) is None, "not caught up: its history does not hold g7"
    m.covers = lambda head: head in ("", "g7")
    assert m.evaluate(102.0) is None, "up for 2 s of a 3 s hold"
    assert m.evaluate(103.1) == 256


def test_the_hold_counts_again_from_a_return_after_a_pause():
    m = node(0, [1], now=100.0, epoch=1)
    m.covers = lambda head: True
    m.heartbeat(beat(1, 2, 1, head="g7"), 100.1)
    m.returned(110.0, away=6.0)
    assert m.evaluate(112.0) is None, "back for 2 s of a 3 s hold, though the process is 12 s old"
    assert m.evaluate(113.1) == 256


def test_a_claim_from_a_lower_epoch_is_refused_and_a_higher_one_wins():
    m = node(2, [0, 1])
    m.heartbeat(beat(1, 5, 1), 0.1)
    m.heartbeat(beat(0, 3, 0), 0.2)
    assert (m.epoch, m.primary) == (5, 1)
    assert any("refused" in line for line in m.drain_log())
    assert not m.accepts(4) and m.accepts(5)


def test_two_claims_of_one_epoch_go_to_the_lower_id():
    m = node(2, [0, 1], now=0.0)
    m.heartbeat(beat(0), 0.1)
    m.heartbeat(beat(1), 0.1)
    m.lost(0, 2.0)
    m.lost(1, 2.0)
    assert m.evaluate(2.0) == 2
    m.heartbeat(beat(1, 2, 1), 2.1)
    assert (m.primary, m.role(2.1)) == (1, Role.SECONDARY)


def test_a_server_never_synced_does_not_claim_while_a_peer_holds_a_generation():
    m = node(1, [0, 2])
    m.heartbeat(beat(0, 1, 0, head="g4"), 0.1)
    m.heartbeat(beat(2, 1, 0, sees=[1, 2], head="g4"), 0.1)
    m.lost(0, 1.0)
    assert m.evaluate(1.0) is None
    m2 = node(2, [0, 1])
    m2.head = "g4"
    m2.heartbeat(beat(0, 1, 0, head="g4"), 0.1)
    m2.heartbeat(beat(1, 1, 0, sees=[1, 2]), 0.1)
    m2.lost(0, 1.0)
    assert m2.evaluate(1.0) == 2
    m.head = "g3"
    assert m.evaluate(1.1) == 257, "a stale head is no bar: the new primary takes the others' heads in first"


# ---------------------------------------------------------------------------
# The election as a whole: a simulated cluster under random kills and restarts

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

IDS = [0, 1, 2, 3]
STEP = 0.5


def heartbeat_of(m: Membership, now: float) -> Heartbeat:
    return replace(beat(m.me, m.epoch, m.primary, sees=sorted(m.up), head=m.head), uptime=now - m.started)


class SimulatedCluster:
    """Servers exchanging heartbeats instantly; a kill closes connections, as a killed process's kernel does.

    A server killed right after a claim may not have announced it, and the
    next claimant can take the same epoch number: the property is about
    servers that are up at the same moment, as the issue states it.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.saved_epoch = {i: 0 for i in IDS}
        self.nodes: dict[int, Membership] = {}
        self.doubles: list[tuple[float, int, set[int]]] = []

    def start(self, i: int) -> None:
        if i not in self.nodes:
            self.nodes[i] = node(i, [p for p in IDS if p != i], self.now, self.saved_epoch[i])

    def kill(self, i: int) -> None:
        if self.nodes.pop(i, None) is not None:
            for other in self.nodes.values():
                other.lost(i, self.now)

    def step(self) -> None:
        self.now += STEP
        for sender in list(self.nodes.values()):
            message = heartbeat_of(sender, self.now)
            for receiver in self.nodes.values():
                if receiver is not sender:
                    receiver.heartbeat(message, self.now)
        for m in self.nodes.values():
            m.expire(self.now)
            m.evaluate(self.now)
            self.saved_epoch[m.me] = m.epoch
        claims: dict[int, set[int]] = {}
        for m in self.nodes.values():
            if m.primary == m.me:
                claims.setdefault(m.epoch, set()).add(m.me)
        self.doubles += [(self.now, epoch, who) for epoch, who in claims.items() if len(who) > 1]


events = st.lists(st.tuples(st.sampled_from(["kill", "start", "wait"]), st.sampled_from(IDS)), max_size=25)


@settings(max_examples=500, deadline=None)
@given(events)
def test_one_primary_per_epoch_and_in_the_end_the_lowest_id_up(script):
    cluster = SimulatedCluster()
    for i in IDS:
        cluster.start(i)
    for action, target in script:
        if action == "kill":
            cluster.kill(target)
        elif action == "start":
            cluster.start(target)
        cluster.step()
    for _ in range(20):
        cluster.step()
    assert not cluster.doubles, "two servers up at once claimed one epoch"
    if cluster.nodes:
        lowest = min(cluster.nodes)
        assert {m.primary for m in cluster.nodes.values()} == {lowest}
        assert all(m.role(cluster.now) is (Role.PRIMARY if m.me == lowest else Role.SECONDARY)
                   for m in cluster.nodes.values())


def test_a_higher_epoch_without_a_primary_ends_a_stale_term():
    """Servers restarting with different saved epochs: the lowest id must claim past the highest one."""
    zero = node(0, [3], now=0.0, epoch=2)
    three = node(3, [0], now=0.0, epoch=5)
    zero.heartbeat(beat(3, 5, None), 0.1)
    three.heartbeat(beat(0, 2, None), 0.1)
    assert zero.evaluate(0.2) == 256
    three.heartbeat(beat(0, 256, 0), 0.3)
    assert (three.epoch, three.primary) == (256, 0)


def test_servers_cut_off_from_each_other_never_claim_one_epoch():
    """Defect 8: each side of a partition claims; the epochs differ, so no two primaries act in one epoch."""
    claims = {me: claim_epoch(300, me) for me in range(256)}
    assert len(set(claims.values())) == 256 and all(300 < e <= 556 for e in claims.values())
    assert claim_epoch(claims[7], 7) == claims[7] + 256


def test_a_peer_whose_heartbeats_came_late_is_given_the_time_it_has_been_taking():
    m = Membership.start(1, [0], detection=1.5, hold=3.0, now=0.0, interval=0.5)
    for t in (0.5, 1.0, 1.5):
        m.heartbeat(beat(0, 1, 0), t)
    assert m.fuse(0) == 1.5, "heartbeats on time: the base fuse"
    m.heartbeat(beat(0, 1, 0), 1.9)  # 0.4 s late: within an interval of jitter
    assert m.fuse(0) == 1.5
    m.heartbeat(beat(0, 1, 0), 3.3)  # 0.9 s late, 0.4 s past the jitter: a starved primary
    assert abs(m.fuse(0) - (1.5 + 2 * 0.4)) < 1e-9
    assert not m.expire(3.3 + 2.0), "silent 2 s: past the base fuse, within the one it has earned"
    assert m.expire(3.3 + 2.4)


def test_lateness_fades_with_heartbeats_on_time_and_an_outage_is_not_lateness():
    m = Membership.start(1, [0], detection=1.5, hold=3.0, now=0.0, interval=0.5)
    m.heartbeat(beat(0, 1, 0), 0.0)
    m.heartbeat(beat(0, 1, 0), 1.5)
    t = 1.5
    while t < 60:
        t += 0.5
        m.heartbeat(beat(0, 1, 0), t)
    assert m.fuse(0) < 1.5 + 0.05, "a minute on time: back to the base"
    m.heartbeat(beat(0, 1, 0), t + 30)  # a restart or a long pause: not lateness
    assert m.fuse(0) < 1.5 + 0.05


def test_the_fuse_is_capped_and_a_hung_peer_is_still_found():
    m = Membership.start(1, [0], detection=1.5, hold=3.0, now=0.0, interval=0.5)
    m.heartbeat(beat(0, 1, 0), 0.0)
    m.heartbeat(beat(0, 1, 0), 5.9)  # 4.9 s past the jitter, just within the cap
    assert m.fuse(0) == 4 * 1.5
    assert m.expire(5.9 + 6.1)


def test_an_outage_or_this_servers_own_pause_is_not_a_peers_lateness():
    m = Membership.start(1, [0], detection=1.5, hold=3.0, now=0.0, interval=0.5)
    m.heartbeat(beat(0, 1, 0), 0.0)
    m.closed(0, 1.0)  # its connection closed: a restart
    m.heartbeat(beat(0, 1, 0), 5.0)
    assert m.fuse(0) == 1.5, "the gap of a restart is not lateness"
    m.forgive()  # this server was paused or starved: the next gap is its own
    m.heartbeat(beat(0, 1, 0), 8.0)
    assert m.fuse(0) == 1.5
    m.heartbeat(beat(0, 1, 0), 9.5)  # heard again: lateness is learned as before
    assert m.fuse(0) > 1.5


def test_a_slow_neighbours_fuse_grows_by_detection_times_not_by_its_slow_base():
    m = Membership.start(3, [0, 1, 2, 4, 5, 6, 7], detection=1.5, hold=3.0, now=0.0, interval=0.5)
    m.heartbeat(beat(0, 1, 0), 0.0)
    m.relink()
    assert 4 in m.slow
    base, due = 1.5 * SLOW, 0.5 * SLOW
    m.heartbeat(beat(4, 1, 0), 0.0)
    outage = base + 3 * 1.5 + 1.0
    m.heartbeat(beat(4, 1, 0), outage)  # over its base + 3 detection times: an outage, not lateness
    assert m.fuse(4) == base
    m.heartbeat(beat(4, 1, 0), outage + 2 * due + 4.0)  # 4 s late past its interval and jitter: the fuse grows
    assert m.fuse(4) == base + 3 * 1.5, "by 3 detection times, not by 3 times its slow base"
