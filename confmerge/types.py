"""Value types of the BQN format (format page, section 3) and their normal forms.

Two values are the same configuration exactly when their normal forms are equal,
so diff and merge compare normal forms and never source text. Each parser is a
pure function from a word to its normal form that raises ``ValueError`` with a
message fit for an operator; results are cached because backups repeat values.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Hashable

Parser = Callable[[str], Hashable]

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_INDEX = {day: i for i, day in enumerate(_DAYS)}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOST = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?")
_CLOCK = re.compile(r"([0-9][0-9]):([0-9][0-9])")
_RATE = re.compile(r"([0-9]+)([kMG])")
_RATE_UNITS = {"k": 1, "M": 1000, "G": 1000_000}
_BOOLS = {
    "yes": True, "true": True, "on": True, "enable": True, "enabled": True,
    "no": False, "false": False, "off": False, "disable": False, "disabled": False,
}


@dataclass(frozen=True, slots=True)
class Rate:
    """A bit rate in kbps; 0 is unlimited."""

    kbps: int

    def __str__(self) -> str:
        for unit, factor in (("G", 1000_000), ("M", 1000)):
            if self.kbps and self.kbps % factor == 0:
                return f"{self.kbps // factor}{unit}"
        return f"{self.kbps}k" if self.kbps else "0"


@dataclass(frozen=True, slots=True)
class Days:
    """A set of weekdays as a bit mask (bit 0 is Monday)."""

    mask: int

    def __str__(self) -> str:
        if self.mask == 0x7F:
            return "all"
        return ",".join(day for i, day in enumerate(_DAYS) if self.mask >> i & 1)


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Minutes from midnight; ``end < start`` wraps past midnight."""

    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:{self.end % 60:02d}"


INT_MAX = 2**32 - 1
"""The largest ``int`` the format accepts: what a 32-bit unsigned counter holds."""
RATE_MAX_KBPS = 1000_000_000
"""The largest rate the format accepts, 1000G (1 Tbps): beyond any link a BQN shapes."""


def _digits(word: str, high: int) -> int | None:
    """``word`` as a number if it is ASCII digits, capped at ``high + 1`` without reading more digits than
    ``high`` has (a 5,000-digit word is a number too large, not an interpreter's conversion limit)."""
    if not word.isdigit() or not word.isascii():
        return None
    significant = word.lstrip("0")
    if len(significant) > len(str(high)):
        return high + 1
    return int(significant or "0")


def _integer(word: str, low: int, high: int, what: str, bound: str | None = None) -> int:
    value = _digits(word, high)
    if value is None:
        raise ValueError(f"expected {what}, got '{_shown(word)}'")
    if value < low or value > high:
        raise ValueError(f"{what} must be {bound or f'{low}..{high}'}, got {_shown(word)}")
    return value


def _shown(word: str, limit: int = 40) -> str:
    """A word quoted in a message, cut short when it is long."""
    return word if len(word) <= limit else f"{word[:limit // 2]}...{word[-8:]} ({len(word)} characters)"


@lru_cache(maxsize=4096)
def parse_id(word: str) -> int:
    return _integer(word, 0, 255, "a BQN id")


@lru_cache(maxsize=4096)
def parse_port(word: str) -> int:
    return _integer(word, 1, 65535, "a port")


@lru_cache(maxsize=1024)
def parse_mtu(word: str) -> int:
    return _integer(word, 68, 9216, "an MTU")


@lru_cache(maxsize=4096)
def parse_int(word: str) -> int:
    return _integer(word, 0, INT_MAX, "a non-negative integer", f"at most {INT_MAX}")


def parse_bool(word: str) -> bool:
    try:
        return _BOOLS[word.lower()]
    except KeyError:
        raise ValueError(f"expected yes or no, got '{word}'") from None


@lru_cache(maxsize=65536)
def parse_address(word: str) -> str:
    try:
        return ipaddress.ip_address(word).compressed
    except ValueError:
        raise ValueError(f"expected an IPv4 or IPv6 address, got '{word}'") from None


@lru_cache(maxsize=65536)
def parse_prefix(word: str) -> str:
    address, slash, length = word.partition("/")
    if not slash or not length.isdigit() or not length.isascii():
        raise ValueError(f"expected a prefix ADDRESS/LENGTH, got '{word}'")
    try:
        return ipaddress.ip_network(word, strict=False).with_prefixlen
    except ValueError:
        raise ValueError(f"expected a prefix ADDRESS/LENGTH, got '{word}'") from None


@lru_cache(maxsize=4096)
def parse_interface_address(word: str) -> str:
    """An address on a subnet (``192.168.0.121/24``): unlike a prefix, the host part is kept."""
    address, slash, length = word.partition("/")
    if not slash or not length.isdigit() or not length.isascii():
        raise ValueError(f"expected ADDRESS/LENGTH, got '{word}'")
    try:
        return ipaddress.ip_interface(word).with_prefixlen
    except ValueError:
        raise ValueError(f"expected ADDRESS/LENGTH, got '{word}'") from None


@lru_cache(maxsize=4096)
def parse_rate(word: str) -> Rate:
    if word == "0":
        return Rate(0)
    match = _RATE.fullmatch(word)
    if not match:
        raise ValueError(f"expected a rate such as 100M, 512k or 1G, got '{_shown(word)}'")
    factor = _RATE_UNITS[match[2]]
    count = _digits(match[1], RATE_MAX_KBPS // factor)
    assert count is not None, "the pattern admits ASCII digits only"
    if count * factor > RATE_MAX_KBPS:
        raise ValueError(f"a rate must be at most {Rate(RATE_MAX_KBPS)}, got {_shown(word)}")
    return Rate(count * factor)


def _day(word: str, whole: str) -> int:
    try:
        return _DAY_INDEX[word.lower()]
    except KeyError:
        raise ValueError(f"expected days such as mon-fri, sat,sun or all, got '{whole}'") from None


@lru_cache(maxsize=1024)
def parse_days(word: str) -> Days:
    if word.lower() == "all":
        return Days(0x7F)
    mask = 0
    for part in word.split(","):
        first, dash, last = part.partition("-")
        start = _day(first, word)
        stop = _day(last, word) if dash else start
        day = start
        while True:
            mask |= 1 << day
            if day == stop:
                break
            day = (day + 1) % 7
    return Days(mask)


def _minutes(clock: str, whole: str) -> int:
    match = _CLOCK.fullmatch(clock)
    if not match or int(match[2]) > 59 or int(match[1]) * 60 + int(match[2]) > 24 * 60:
        raise ValueError(f"expected a time range HH:MM-HH:MM within 00:00..24:00, got '{whole}'")
    return int(match[1]) * 60 + int(match[2])


@lru_cache(maxsize=1024)
def parse_timerange(word: str) -> TimeRange:
    start, dash, end = word.partition("-")
    if not dash:
        raise ValueError(f"expected a time range HH:MM-HH:MM, got '{word}'")
    return TimeRange(_minutes(start, word), _minutes(end, word))


def parse_name(word: str) -> str:
    if not _NAME.fullmatch(word):
        raise ValueError(
            f"expected a name (letters, digits, '.', '_', '-', at most 64, starting with a letter or digit), got '{word}'"
        )
    return word


@lru_cache(maxsize=16384)
def parse_host(word: str) -> str:
    try:
        return ipaddress.ip_address(word).compressed
    except ValueError:
        pass
    if not _HOST.fullmatch(word):
        raise ValueError(f"expected a host name or address, got '{word}'")
    return word.lower().rstrip(".")


def parse_string(word: str) -> str:
    return word


def enum(*choices: str) -> Parser:
    """A parser accepting exactly ``choices`` (as written)."""

    allowed = frozenset(choices)
    listed = "|".join(choices)

    def parse(word: str) -> str:
        if word not in allowed:
            raise ValueError(f"expected {listed}, got '{word}'")
        return word

    parse.__name__ = f"enum({listed})"
    return parse


TYPES: dict[str, Parser] = {
    "id": parse_id,
    "port": parse_port,
    "mtu": parse_mtu,
    "int": parse_int,
    "bool": parse_bool,
    "address": parse_address,
    "prefix": parse_prefix,
    "interface-address": parse_interface_address,
    "rate": parse_rate,
    "days": parse_days,
    "timerange": parse_timerange,
    "name": parse_name,
    "host": parse_host,
    "string": parse_string,
}


def show(value: Hashable) -> str:
    """The normal form as an operator reads it (``yes``/``no`` for booleans)."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def to_json(value: Hashable) -> object:
    """The normal form as JSON data: numbers stay numbers, composites become text."""
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, Rate):
        return value.kbps
    return str(value)
