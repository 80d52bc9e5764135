"""Generate large, valid BQN backups for the benchmarks.

A backup of N lines is the guide's example scaled up: many interfaces, static
routes, subscriber groups, rate policies, profiles and rules, all cross-
referenced as a real one would be. ``pair`` gives two backups whose entries
differ in a given fraction (changed values, removed and added entries, a rule
moved), the shape of two servers' backups before a merge.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path


def _sections(count: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    sections: list[list[str]] = [
        ["hostname bqn0"], ["bqn-id 0"], ["timezone Europe/Madrid"],
        ["ntp", "  server 129.6.15.28 prefer", "  server 162.159.200.1"],
        ["dns", "  server 8.8.8.8", "  domain isp.example"],
        ["management", "  interface en0o0", "  address 192.168.0.121/24", "  gateway 192.168.0.1"],
        ["rest-api", "  enabled yes", "  port 3443"],
    ]
    lines = sum(map(len, sections))
    routes = ["routing"]
    i = 0
    while lines < count:
        kind = i % 8
        if kind == 0:
            block = [f"interface en{i}o1", f'  description "port {i}"', f"  mtu {rng.choice((1500, 9000))}", "  speed 10G"]
        elif kind == 1:
            routes.append(f"  static 10.{i // 250 % 250}.{i % 250}.0/24 via 192.168.0.{1 + i % 250} metric {i % 100}")
            lines += 1
            i += 1
            continue
        elif kind == 2:
            block = [f"policy rate plan-{i}", f"  downlink {rng.choice((10, 50, 100, 500))}M", f"  uplink {rng.choice((1, 5, 10, 20))}M", "  congestion-management yes"]
        elif kind == 3:
            block = [f"subscriber-group group-{i}", f"  range 172.{16 + i // 65536 % 16}.{i // 256 % 256}.{i % 256 // 16 * 16}/28", f"  policy plan-{i - 1}"]
        elif kind == 4:
            block = [f"profile time time-{i}", "  range mon-fri 18:00-23:00", "  range sat,sun 12:00-24:00"]
        elif kind == 5:
            block = [f"profile speed-test tests-{i}", f"  host speedtest{i}.example.net", "  host fast.com"]
        elif kind == 6:
            block = [f"profile sw-update updates-{i}", f"  host cdn{i}.example.com", "  host swcdn.apple.com"]
        else:
            block = [f"rule rule-{i}", f"  subscriber-group group-{i - 4}", f"  time-profile time-{i - 3}", f"  policy plan-{i - 5}"]
        sections.append(block)
        lines += len(block)
        i += 1
    sections.insert(6, routes)
    return sections


def backup(lines: int, seed: int = 1) -> str:
    """A valid backup of about ``lines`` lines."""
    return "\n".join(line for section in _sections(lines, seed) for line in section) + "\n"


def _change(section: list[str], n: int) -> None:
    head = section[0]
    if head.startswith("policy rate"):
        section[1] = "  downlink 999M"
    elif head.startswith("interface"):
        section[2] = "  mtu 9216"
    elif head.startswith("profile time"):
        section[1] = "  range mon-thu 19:00-23:00"
    else:
        section[1] = f"  host changed{n}.example.org"


def _add(section: list[str], n: int) -> None:
    head = section[0]
    if head.startswith("policy rate"):
        section.append("  acceleration yes")
    elif head.startswith("interface"):
        section.append("  shutdown")
    elif head.startswith("profile time"):
        section.append("  range sun 01:00-02:00")
    else:
        section.append(f"  host added{n}.example.org")


def pair(lines: int, fraction: float = 0.01, seed: int = 1) -> tuple[str, str]:
    """Two backups of about ``lines`` lines whose entries differ in ``fraction`` of sections.

    Each touched section has one value changed, one entry removed or one added;
    a new policy and a rule that uses it are appended.
    """
    old = _sections(lines, seed)
    new = [list(section) for section in old]
    rng = random.Random(seed + 1)
    changeable = [i for i, s in enumerate(new) if len(s) > 2 and s[0].startswith(("policy rate", "interface", "profile"))]
    for n, index in enumerate(rng.sample(changeable, max(1, int(len(new) * fraction)))):
        section = new[index]
        if n % 3 == 0:
            _change(section, n)
        elif n % 3 == 1:
            del section[-1]
        else:
            _add(section, n)
    new.append([f"policy rate added-{seed}", "  downlink 1G", "  uplink 1G"])
    new.append([f"rule added-{seed}", f"  policy added-{seed}"])
    return (
        "\n".join(line for s in old for line in s) + "\n",
        "\n".join(line for s in new for line in s) + "\n",
    )


# ---------------------------------------------------------------------------
# Adversarial shapes for the merge: each is linear for ``diff`` and was quadratic for ``merge``.

_HEAD = "hostname bqn{0}\nbqn-id {0}\npolicy rate p\n  downlink 1M\n"


def _rule(k: int) -> str:
    return f"rule r{k}\n  policy p\n"


def _policy_and_rule(k: int) -> str:
    return f"policy rate q{k}\n  downlink {k + 1}M\nrule s{k}\n  policy q{k}\n"


def interleaved(count: int) -> tuple[str, str, None]:
    """``count`` rules, each after the policy it uses, on the second input; the first has every other pair:
    half of the rules and policies are new, each between existing ones."""
    return (_HEAD.format(0) + "".join(_policy_and_rule(k) for k in range(0, count, 2)),
            _HEAD.format(1) + "".join(_policy_and_rule(k) for k in range(count)), None)


def reversed_rules(count: int) -> tuple[str, str, None]:
    """The same ``count`` rules, in reverse order on the second input."""
    return (_HEAD.format(0) + "".join(_rule(k) for k in range(count)),
            _HEAD.format(1) + "".join(_rule(k) for k in reversed(range(count))), None)


def _group(members: range, ranges: int) -> str:
    return ("subscriber-group g\n  member 10.0.0.1\n"
            + "".join(f"  member 10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}\n" for k in members)
            + "".join(f"  range 172.{16 + (k >> 12 & 15)}.{k >> 4 & 255}.{(k & 15) * 16}/28\n" for k in range(ranges))
            + "  policy p\n")


def block_top(count: int) -> tuple[str, str, None]:
    """``count`` members added to a group whose one member line is at the top, above ``count`` ranges."""
    return (_HEAD.format(0) + _group(range(0), count),
            _HEAD.format(1) + _group(range(256, 256 + count), count), None)


def block_removal(count: int) -> tuple[str, str, str]:
    """Three-way: ``count`` members of one group, all removed on the second input since the base (the third text)."""
    full = _HEAD.format(0) + _group(range(256, 256 + count), 0)
    return full, _HEAD.format(1) + _group(range(0), 0), full.replace("bqn0", "base").replace("bqn-id 0", "bqn-id 9")


def new_sections(count: int) -> tuple[str, str, None]:
    """``count`` sections (policies and the rules that name them) that only the second input has: one long run
    of new sections, each placed after the one before it (the weave of the top level was quadratic in it)."""
    return (_HEAD.format(0), _HEAD.format(1) + "".join(_policy_and_rule(k) for k in range(count // 2)), None)


SHAPES = {"interleaved": interleaved, "reversed": reversed_rules, "block-top": block_top, "block-removal": block_removal,
          "new-sections": new_sections}
"""Each shape: entries -> (first input, second input, base or None)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lines", type=int)
    parser.add_argument("-o", "--out", type=Path, required=True, help="output file (with --pair: prefix)")
    parser.add_argument("--pair", type=float, metavar="FRACTION", help="write PREFIX-a.conf and PREFIX-b.conf differing in FRACTION")
    args = parser.parse_args()
    if args.pair is None:
        args.out.write_text(backup(args.lines))
    else:
        a, b = pair(args.lines, args.pair)
        Path(f"{args.out}-a.conf").write_text(a)
        Path(f"{args.out}-b.conf").write_text(b)


if __name__ == "__main__":
    main()
