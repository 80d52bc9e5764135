"""Uploaded backups: bounded in size and count, named safely, parsed and checked as ``confmerge check`` does."""

from __future__ import annotations

import asyncio
import unicodedata
from dataclasses import dataclass
from pathlib import PureWindowsPath
from typing import Any, Sequence

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiDictProxy

from ..check import validate
from ..diagnostics import ConfError, Diagnostic
from ..files import decode_text
from ..parser import parse
from ..rules import Rules
from ..tree import Config
from .errors import Problem

BODY_SECONDS = web.AppKey("body seconds", float)


@dataclass(frozen=True)
class Limits:
    """What one request may upload: each file, all of them together, and how many."""

    file_bytes: int = 16 * 1024 * 1024
    total_bytes: int = 64 * 1024 * 1024
    files: int = 16


@dataclass(frozen=True)
class Upload:
    name: str
    text: str


def safe_name(filename: str | None, fallback: str) -> str:
    """The file's own name without any directory, its spaces and letters kept (``--resolve`` names the files so).

    Only what could mislead or break a path or a header goes: control and format characters (a right-to-left
    override too), quotes, and leading dots.
    """
    name = PureWindowsPath(filename or "").name.strip()
    name = "".join("_" if ch == '"' or unicodedata.category(ch).startswith("C") else ch for ch in name)
    return name[:100].lstrip(".").strip() or fallback


async def form(request: web.Request) -> MultiDictProxy[Any]:
    """The request's multipart form (see :func:`posted`); anything else is 415."""
    if request.content_type != "multipart/form-data":
        raise Problem(415, "send the backups as multipart/form-data")
    return await posted(request)


async def posted(request: web.Request) -> MultiDictProxy[Any]:
    """The request's form: 413 over the total limit (aiohttp's client_max_size), 400 if malformed, 408 if too slow."""
    try:
        async with asyncio.timeout(request.app[BODY_SECONDS]):
            return await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise Problem(413, f"the upload is larger than {request.app._client_max_size} bytes in all") from None
    except (ValueError, HttpProcessingError) as error:
        raise Problem(400, "the form is malformed (its boundary or a part's headers, such as a file name "
                      "with control characters)") from None
    except TimeoutError:
        raise Problem(408, f"the request body took longer than {request.app[BODY_SECONDS]:g} seconds") from None


async def read_body(request: web.Request) -> bytes:
    """The request's body, bounded in time as :func:`posted` is."""
    try:
        async with asyncio.timeout(request.app[BODY_SECONDS]):
            return await request.read()
    except TimeoutError:
        raise Problem(408, f"the request body took longer than {request.app[BODY_SECONDS]:g} seconds") from None


def files(data: MultiDictProxy[Any], field: str, limits: Limits, required: bool = True) -> list[Upload]:
    """Every file uploaded in ``field``, decoded as UTF-8; 413 over a limit, 400 if missing or not text."""
    fields = [value for value in data.getall(field, []) if isinstance(value, web.FileField) and value.filename]
    if not fields and required:
        raise Problem(400, f"no file in the form field '{field}'")
    if len(fields) > limits.files:
        raise Problem(413, f"{len(fields)} files in '{field}'; at most {limits.files}")
    uploads = []
    for k, item in enumerate(fields):
        name = safe_name(item.filename, f"{field}-{k + 1}.conf")
        data_bytes = item.file.read(limits.file_bytes + 1)
        if len(data_bytes) > limits.file_bytes:
            raise Problem(413, f"{name} is larger than {limits.file_bytes} bytes")
        try:
            uploads.append(Upload(name, decode_text(data_bytes, name)))
        except ConfError as error:
            raise bad_backups(error.diagnostics, {name: ""}) from None
    return uploads


def diagnostic_data(diagnostic: Diagnostic, lines: Sequence[str] | None) -> dict[str, Any]:
    """A diagnostic as data, with the offending line of the file when it has a position."""
    source = lines[diagnostic.line - 1] if lines is not None and 0 < diagnostic.line <= len(lines) else None
    return {"severity": diagnostic.severity, "file": diagnostic.file, "line": diagnostic.line,
            "column": diagnostic.column, "message": diagnostic.message, "text": diagnostic.formatted,
            "source": source}


def bad_backups(diagnostics: Sequence[Diagnostic], texts: dict[str, str]) -> Problem:
    lines = {name: text.splitlines() for name, text in texts.items()}
    count = sum(1 for d in diagnostics if d.severity == "error")
    return Problem(400, f"{count} error{'s' if count != 1 else ''} in the backup{'s' if len(texts) > 1 else ''}",
                   diagnostics=[diagnostic_data(d, lines.get(d.file)) for d in diagnostics])


def check(upload: Upload, rules: Rules | None) -> tuple[Config | None, list[Diagnostic]]:
    """Parse and check one backup: the tree (None if it does not parse) and every diagnostic, warnings too."""
    try:
        config = parse(upload.text, upload.name, rules)
    except ConfError as error:
        return None, list(error.diagnostics)
    return config, [*config.warnings, *validate(config)]


def load(uploads: Sequence[Upload], rules: Rules | None) -> list[Config]:
    """Every upload parsed and checked; any error in any of them is one 400 with all the diagnostics."""
    configs, problems = [], []
    for upload in uploads:
        config, found = check(upload, rules)
        problems += found
        if config is not None:
            configs.append(config)
    if any(d.severity == "error" for d in problems):
        raise bad_backups(problems, {u.name: u.text for u in uploads})
    return configs
