"""The statement kinds of the BQN format (format page, section 4) as data.

Each kind is one :class:`Kind` built from a signature such as
``"static {prefix:prefix} via {via:address} [metric {metric:int}]"``: literal
words, typed fields ``{name:type}`` (or ``{name:a|b|c}`` for a choice), and
optional groups in brackets that open with a literal (a group of literals
alone, such as ``[prefer]``, is a yes/no field named after its word). ``identity`` names the
fields that, with the keyword, tell entries of one block apart: ``()`` for a
single statement, ``"*"`` for the whole value. ``refs`` maps a field to the
section kind it names. Merge classes are not here: they come from the rules
file (:mod:`confmerge.rules`), which users may override.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Hashable, Mapping, cast

from .types import TYPES, Parser, enum

WHOLE = "*"


@dataclass(frozen=True, slots=True)
class Literal:
    word: str


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: str
    parse: Parser


@dataclass(frozen=True, slots=True)
class Optional:
    elements: tuple[Literal | Field, ...]


Element = Literal | Field | Optional


@dataclass(frozen=True, eq=False)
class Kind:
    """One kind of statement or section: its signature, identity and children.

    Kinds are singletons of the schema, so they compare and hash by identity.
    """

    signature: str
    identity: tuple[str, ...] | str = ()
    refs: Mapping[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    children: tuple["Kind", ...] = ()
    elements: tuple[Element, ...] = field(init=False)
    keyword: str = field(init=False)
    fields: tuple[str, ...] = field(init=False)
    by_keyword: Mapping[str, "Kind"] = field(init=False)
    plain: tuple[tuple[int, Parser], ...] | None = field(init=False)

    def __post_init__(self) -> None:
        elements = _compile(self.signature)
        keyword = []
        for element in elements:
            if not isinstance(element, Literal):
                break
            keyword.append(element.word)
        names = tuple(_field_names(elements))
        unknown = set(self.identity if self.identity != WHOLE else ()) | set(self.refs)
        if unknown - set(names):
            raise ValueError(f"{self.signature}: unknown fields {sorted(unknown - set(names))}")
        object.__setattr__(self, "elements", elements)
        object.__setattr__(self, "keyword", " ".join(keyword))
        object.__setattr__(self, "fields", names)
        object.__setattr__(self, "by_keyword", {child.keyword: child for child in self.children})
        plain = None
        if not any(isinstance(e, Optional) for e in elements):
            plain = tuple((i, e.parse) for i, e in enumerate(elements) if isinstance(e, Field))
        object.__setattr__(self, "plain", plain)

    @property
    def arity(self) -> int:
        """How many words a statement of this kind has when it has no optional parts."""
        return len(self.elements)

    @property
    def single(self) -> bool:
        return self.identity == ()

    def identity_of(self, values: tuple[Hashable, ...]) -> tuple[Hashable, ...]:
        """The identity key of an entry of this kind with these field values."""
        if self.identity == ():
            return (self.keyword,)
        if self.identity == WHOLE:
            return (self.keyword, *values)
        return (self.keyword, *(values[self.fields.index(name)] for name in self.identity))

    def position(self, name: str) -> int | None:
        """Which word holds field ``name``: known when no optional group comes before it."""
        for index, element in enumerate(self.elements):
            if isinstance(element, Optional):
                return None
            if isinstance(element, Field) and element.name == name:
                return index
        return None

    def child(self, words: tuple[str, ...]) -> "Kind | None":
        """The child kind a statement with these words is, if the schema lists it."""
        return _lookup(self.by_keyword, words)


_TOKEN = re.compile(r"\{(\w[\w-]*):([^}]+)\}|\[|\]|[^\s\[\]{}]+")


def _compile(signature: str) -> tuple[Element, ...]:
    stack: list[list[Element]] = [[]]
    for match in _TOKEN.finditer(signature):
        token = match[0]
        if token == "[":
            stack.append([])
        elif token == "]":
            group = tuple(stack.pop())
            if not group or not isinstance(group[0], Literal):
                raise ValueError(f"{signature}: an optional group must open with a literal")
            stack[-1].append(Optional(cast(tuple[Literal | Field, ...], group)))
        elif match[1]:
            name, type_name = match[1], match[2]
            parse = enum(*type_name.split("|")) if "|" in type_name else TYPES[type_name]
            stack[-1].append(Field(name.replace("-", "_"), type_name, parse))
        else:
            stack[-1].append(Literal(token))
    if len(stack) != 1:
        raise ValueError(f"{signature}: unbalanced brackets")
    return tuple(stack[0])


def _field_names(elements: tuple[Element, ...]):
    for element in elements:
        if isinstance(element, Field):
            yield element.name
        elif isinstance(element, Optional):
            if any(isinstance(inner, Field) for inner in element.elements):
                yield from _field_names(element.elements)
            else:
                yield cast(Literal, element.elements[0]).word.replace("-", "_")


def _lookup(by_keyword: Mapping[str, Kind], words: tuple[str, ...]) -> Kind | None:
    """The kind whose keyword words are the first of ``words``: word by word, so the one quoted word
    ``"policy rate"`` is not the two words ``policy rate`` (quoting a word that needs none changes nothing)."""
    if not words or " " in words[0]:
        return None
    if len(words) > 1 and " " not in words[1]:
        kind = by_keyword.get(f"{words[0]} {words[1]}")
        if kind is not None:
            return kind
    return by_keyword.get(words[0])


def _host_profile(kind: str) -> Kind:
    return Kind(f"profile {kind} {{name:name}}", identity=("name",), children=(
        Kind("host {host:host}", identity=("host",)),
    ))


SECTIONS: tuple[Kind, ...] = (
    Kind("hostname {name:name}"),
    Kind("bqn-id {id:id}"),
    Kind("timezone {zone:string}"),
    Kind("ntp", children=(Kind("server {address:address} [prefer]", identity=("address",)),)),
    Kind("dns", children=(
        Kind("server {address:address}", identity=("address",)),
        Kind("domain {name:name}"),
    )),
    Kind("management", children=(
        Kind("interface {name:name}"),
        Kind("address {address:interface-address}"),
        Kind("gateway {address:address}"),
    )),
    Kind("rest-api", children=(
        Kind("enabled {enabled:bool}"),
        Kind("port {port:port}"),
        Kind("user {name:name}", identity=("name",), children=(
            Kind("password-hash {hash:string}"),
            Kind("role {role:admin|read-only}"),
        )),
    )),
    Kind("interface {name:name}", identity=("name",), children=(
        Kind("description {text:string}"),
        Kind("mtu {mtu:mtu}"),
        Kind("speed {speed:auto|1G|10G|25G|40G|100G}"),
        Kind("shutdown"),
    )),
    Kind("wire {name:name}", identity=("name",), children=(
        Kind("access {interface:name}"),
        Kind("internet {interface:name}"),
    )),
    Kind("routing", children=(
        Kind("static {prefix:prefix} via {via:address} [metric {metric:int}]", identity=("prefix",)),
    )),
    Kind("profile time {name:name}", identity=("name",), children=(
        Kind("range {days:days} {time:timerange}", identity=WHOLE),
    )),
    _host_profile("speed-test"),
    _host_profile("sw-update"),
    Kind("subscriber-group {name:name}", identity=("name",), children=(
        Kind("range {prefix:prefix}", identity=("prefix",)),
        Kind("member {address:address}", identity=("address",)),
        Kind("policy {name:name}", refs={"name": "policy rate"}),
    )),
    Kind("policy rate {name:name}", identity=("name",), children=(
        Kind("downlink {rate:rate}"),
        Kind("uplink {rate:rate}"),
        Kind("congestion-management {enabled:bool}"),
        Kind("acceleration {enabled:bool}"),
    )),
    Kind("rule {name:name}", identity=("name",), required=("policy",), children=(
        Kind("policy {name:name}", refs={"name": "policy rate"}),
        Kind("time-profile {name:name}", refs={"name": "profile time"}),
        Kind("speed-test-profile {name:name}", refs={"name": "profile speed-test"}),
        Kind("sw-update-profile {name:name}", refs={"name": "profile sw-update"}),
        Kind("subscriber-group {name:name}", refs={"name": "subscriber-group"}),
        Kind("enabled {enabled:bool}"),
    )),
    Kind("cluster", children=(
        Kind("peer {id:id} address {address:address} [ssh-port {ssh-port:port}]", identity=("id",)),
        Kind("self-address {address:address}"),
    )),
)

ROOT = Kind("", children=SECTIONS)
ORDERED_SECTIONS = frozenset({"rule"})
"""Section kinds whose order among themselves is configuration (first match wins)."""
