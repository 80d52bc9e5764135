"""Hypothesis strategies for merge and adopt: random valid backups of one cluster.

Every backup draws from the same small pools (NTP servers, policies, profiles,
rules...), so two drawn backups overlap, differ and conflict the way servers
of one cluster do, and every reference a drawn backup makes resolves. Content
(:func:`contents`) is drawn apart from style (:func:`styled`): one content in
two styles is two backups equal in normal form (other indentation, line
endings, blank lines and comments, rate spellings, entry and section order;
rule order is configuration and is kept).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from confmerge.tree import MergeClass


@dataclass(frozen=True)
class Block:
    """A line (its spellings, all equal in normal form) and the block under it."""

    spellings: tuple[str, ...]
    children: tuple["Block", ...] = ()


def line(*spellings: str, children: tuple[Block, ...] = ()) -> Block:
    return Block(spellings, children)


NTP = ["129.6.15.28", "162.159.200.1", "216.229.0.50"]
DNS = ["8.8.8.8", "1.1.1.1", "9.9.9.9"]
RATES = [("100M", "100000k"), ("50M", "50000k"), ("5M", "5000k"), ("1G", "1000M")]
POLICIES = ["plan-100M", "plan-50M", "slow"]
TIMES = {"peak-time": ["mon-fri 18:00-23:00", "sat,sun 12:00-24:00"], "night": ["all 22:00-02:00", "sun 01:00-02:00"]}
SPEED_HOSTS = ["speedtest.net", "fast.com", "speedtest.googlefiber.net"]
UPDATE_HOSTS = ["windowsupdate.com", "swcdn.apple.com", "dl.google.com"]
GROUPS = {"business": ["10.20.0.0/16", "10.21.0.0/16"], "home": ["10.30.0.0/16"]}
RULES = ["sw-updates-at-peak", "business", "home", "night-owls"]


def subset(draw, pool, min_size=0):
    return draw(st.lists(st.sampled_from(pool), unique=True, min_size=min_size, max_size=len(pool)))


@st.composite
def contents(draw, bqn_id: int) -> tuple[Block, ...]:
    """The content of one server's backup: its own sections and a draw of the cluster's."""
    blocks = [line(f"hostname bqn{bqn_id}"), line(f"bqn-id {bqn_id}")]
    if draw(st.booleans()):
        blocks.append(line(f"timezone {draw(st.sampled_from(['Europe/Madrid', 'UTC']))}"))
    servers = subset(draw, NTP, 1)
    blocks.append(line("ntp", children=tuple(
        line(f"server {s}" + (" prefer" if k == 0 and draw(st.booleans()) else "")) for k, s in enumerate(servers))))
    if draw(st.booleans()):
        dns = [line(f"server {s}") for s in subset(draw, DNS, 1)]
        if draw(st.booleans()):
            dns.append(line(f"domain {draw(st.sampled_from(['isp.example', 'isp.test']))}"))
        blocks.append(line("dns", children=tuple(dns)))
    blocks.append(line("management", children=(
        line("interface en0o0"), line(f"address 192.168.0.{121 + bqn_id}/24"), line("gateway 192.168.0.1"))))
    if draw(st.booleans()):
        api = [line(f"enabled {draw(st.sampled_from(['yes', 'no']))}"), line(f"port {draw(st.sampled_from([3443, 8443]))}")]
        for user in subset(draw, ["api-admin", "monitor"]):
            api.append(line(f"user {user}", children=(line(f"role {draw(st.sampled_from(['admin', 'read-only']))}"),)))
        blocks.append(line("rest-api", children=tuple(api)))
    blocks.append(line(f"interface en{bqn_id}o1", children=(
        line(f'description "port {bqn_id}"'), line(f"mtu {draw(st.sampled_from([1500, 9000]))}"))))
    if draw(st.booleans()):
        blocks.append(line("snmp", children=(line("community public"), line(f'location "rack {bqn_id}"'))))
    times = subset(draw, list(TIMES))
    for name in times:
        blocks.append(line(f"profile time {name}", children=tuple(
            line(f"range {r}") for r in subset(draw, TIMES[name], 1))))
    speed = draw(st.booleans())
    if speed:
        blocks.append(line("profile speed-test speed-tests", children=tuple(
            line(f"host {h}") for h in subset(draw, SPEED_HOSTS, 1))))
    updates = draw(st.booleans())
    if updates:
        blocks.append(line("profile sw-update sw-updates", children=tuple(
            line(f"host {h}") for h in subset(draw, UPDATE_HOSTS, 1))))
    policies = subset(draw, POLICIES, 1)
    for name in policies:
        statements = [line(*(f"downlink {r}" for r in draw(st.sampled_from(RATES))))]
        if draw(st.booleans()):
            statements.append(line(*(f"uplink {r}" for r in draw(st.sampled_from(RATES)))))
        if draw(st.booleans()):
            statements.append(line(*draw(st.sampled_from([("congestion-management yes", "congestion-management on"),
                                                          ("congestion-management no", "congestion-management off")]))))
        blocks.append(line(f"policy rate {name}", children=tuple(statements)))
    groups = subset(draw, list(GROUPS))
    for name in groups:
        statements = [line(f"range {r}") for r in subset(draw, GROUPS[name], 1)]
        if draw(st.booleans()):
            statements.append(line(f"policy {draw(st.sampled_from(policies))}"))
        blocks.append(line(f"subscriber-group {name}", children=tuple(statements)))
    for name in draw(st.permutations(RULES).map(lambda rules: rules[:draw(st.integers(0, len(RULES)))])):
        statements = [line(f"policy {draw(st.sampled_from(policies))}")]
        if times and draw(st.booleans()):
            statements.append(line(f"time-profile {draw(st.sampled_from(times))}"))
        if updates and draw(st.booleans()):
            statements.append(line("sw-update-profile sw-updates"))
        if speed and draw(st.booleans()):
            statements.append(line("speed-test-profile speed-tests"))
        if groups and draw(st.booleans()):
            statements.append(line(f"subscriber-group {draw(st.sampled_from(groups))}"))
        blocks.append(line(f"rule {name}", children=tuple(statements)))
    return tuple(blocks)


@st.composite
def styled(draw, blocks: tuple[Block, ...], header: str = "") -> str:
    """``blocks`` written in a random style that carries no meaning; rules keep their relative order."""
    width = draw(st.integers(1, 4))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    first, rest = blocks[0], list(blocks[1:])
    rules = [b for b in rest if b.spellings[0].startswith("rule ")]
    others = draw(st.permutations([b for b in rest if not b.spellings[0].startswith("rule ")]))
    order = list(others)
    for rule in rules:
        order.insert(draw(st.integers(max((order.index(r) + 1 for r in rules if r in order), default=0), len(order))), rule)
    out = [header.replace("\n", newline)]

    def emit(block: Block, depth: int) -> None:
        out.append(" " * (width * depth) + draw(st.sampled_from(block.spellings)) + newline)
        for child in draw(st.permutations(block.children)):
            emit(child, depth + 1)

    emit(first, 0)
    for block in order:
        filler = draw(st.sampled_from(["", "", newline, f"# about {block.spellings[0]}{newline}"]))
        out.append(filler)
        emit(block, 0)
    return "".join(out)


@st.composite
def backup(draw, bqn_id: int) -> str:
    return draw(styled(draw(contents(bqn_id)), f"# bqn-version: R5.0.3\n# hostname: bqn{bqn_id}\n"))


def cluster_form(config):
    """The cluster-wide content in normal form: sections by identity (order aside), and the rule order."""
    def content(node):
        return node.kind, node.values if node.kind else node.words, frozenset(map(content, node.entries))
    sections = {s.identity: content(s) for s in config.root.entries if s.merge_class is MergeClass.CLUSTER}
    rules = [s.identity for s in config.root.entries if s.kind is not None and s.kind.keyword == "rule"]
    return sections, rules


def own_sections(config) -> list[str]:
    """The text of the sections that are not cluster-wide, in file order: what a merge must keep byte for byte."""
    out = []
    for section in config.sections:
        if section.merge_class is not MergeClass.CLUSTER:
            out.append("".join(node.text + node.ending for node in (section, *section.walk())))
    return out
