"""The API's OpenAPI document: what scripts can rely on, checked against the routes by a test."""

from __future__ import annotations

from typing import Any

from .. import __version__

_ERROR = {"description": "refused: {error, status} (400 adds the diagnostics)",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_DRAFT = {"description": "the merge draft", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Draft"}}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _files(*fields: str, repeated: tuple[str, ...] = (), optional: tuple[str, ...] = ()) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for field in (*fields, *repeated, *optional):
        one = {"type": "string", "format": "binary"}
        properties[field] = {"type": "array", "items": one} if field in repeated else one
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "properties": properties, "required": [*fields, *repeated]}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _ERROR for code in (401, *codes)}


def _text(kind: str, what: str) -> dict[str, Any]:
    return {"description": what, "content": {kind: {"schema": {"type": "string"}}}}


PATHS: dict[str, dict[str, Any]] = {
    "/api/v1/openapi.json": {"get": {"summary": "this document", "responses": {
        "200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}, **_errors()}}},
    "/api/v1/check": {"post": {"summary": "check backups: syntax, types, references", "requestBody": _files(repeated=("file",)),
                               "responses": {"200": {"description": "{ok, files: [{file, ok, diagnostics}]}",
                                                     "content": {"application/json": {}}}, **_errors(400, 413, 415)}}},
    "/api/v1/diff": {"post": {
        "summary": "what differs between two backups: the document of `confmerge diff --format json`",
        "parameters": [{"name": "scope", "in": "query", "schema": {"enum": ["all", "cluster", "server"]}}],
        "requestBody": _files("old", "new"),
        "responses": {"200": {"description": "schema confmerge.diff/1 (docs/diff.schema.json)",
                              "content": {"application/json": {}}}, **_errors(400, 413, 415)}}},
    "/api/v1/merges": {"post": {
        "summary": "start a merge draft (primary: one of the uploaded names; default the lowest bqn-id)",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["backups"], "properties": {
                "backups": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "base": {"type": "string", "format": "binary"}, "primary": {"type": "string"}}}}}},
        "responses": {"201": _DRAFT, **_errors(400, 413, 415, 429)}}},
    "/api/v1/merges/{id}": {
        "parameters": [_ID],
        "get": {"summary": "the draft", "responses": {"200": _DRAFT, **_errors(404)}},
        "patch": {"summary": "choose another primary (clears the choices)", "requestBody": {"content": {
            "application/json": {"schema": {"type": "object", "properties": {"primary": {"type": "string"}}}}}},
            "responses": {"200": _DRAFT, **_errors(400, 404, 409)}}},
    "/api/v1/merges/{id}/conflicts/{n}": {
        "parameters": [_ID, {"name": "n", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}],
        "patch": {"summary": "resolve conflict n (1-based): take a backup's state of the entry, the primary's or the base's",
                  "requestBody": {"content": {"application/json": {"schema": {"type": "object", "required": ["take"],
                                  "properties": {"take": {"type": "string", "description": "a backup's name, primary, base"}}}}}},
                  "responses": {"200": _DRAFT, **_errors(400, 404, 409, 422)}}},
    "/api/v1/merges/{id}/take-primary": {"parameters": [_ID], "post": {
        "summary": "take the primary's value for every conflict not yet chosen",
        "responses": {"200": _DRAFT, **_errors(404, 409)}}},
    "/api/v1/merges/{id}/confirm": {"parameters": [_ID], "post": {
        "summary": "confirm the draft: its choices are final, its files can be downloaded",
        "responses": {"200": _DRAFT, **_errors(404)}}},
    "/api/v1/merges/{id}/outputs/{file}": {
        "parameters": [_ID, {"name": "file", "in": "path", "required": True, "schema": {"type": "string"}}],
        "get": {"summary": "one -v2 backup, as `confmerge merge --resolve` writes it",
                "responses": {"200": _text("text/plain", "the backup"), **_errors(404, 409)}}},
    "/api/v1/merges/{id}/report": {"parameters": [_ID], "get": {
        "summary": "merge-report.json (docs/merge.md)", "responses": {
            "200": {"description": "the report", "content": {"application/json": {}}}, **_errors(404, 409)}}},
    "/api/v1/merges/{id}/resolutions": {"parameters": [_ID], "get": {
        "summary": "the choices, for `confmerge merge --resolve FILE` (schema confmerge.resolutions/1)",
        "responses": {"200": {"description": "the choices", "content": {"application/json": {}}}, **_errors(404)}}},
    "/api/v1/merges/{id}/archive": {"parameters": [_ID], "get": {
        "summary": "every -v2, merge-report.json and resolutions.json in one zip",
        "responses": {"200": _text("application/zip", "the zip"), **_errors(404, 409)}}},
}


def openapi() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "confmerge", "version": __version__,
                 "description": "Check, compare and merge BQN backups. Authenticate with `Authorization: Bearer TOKEN`."},
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "status"], "properties": {
                    "error": {"type": "string"}, "status": {"type": "integer"},
                    "diagnostics": {"type": "array", "items": {"type": "object", "properties": {
                        "severity": {"type": "string"}, "file": {"type": "string"}, "line": {"type": "integer"},
                        "column": {"type": "integer"}, "message": {"type": "string"}, "text": {"type": "string"},
                        "source": {"type": ["string", "null"]}}}}}},
                "Draft": {"type": "object", "required": ["id", "primary", "conflicts", "outputs"], "properties": {
                    "id": {"type": "string"}, "primary": {"type": "string"}, "base": {"type": ["string", "null"]},
                    "inputs": {"type": "array", "items": {"type": "string"}},
                    "outputs": {"type": "array", "items": {"type": "object", "properties": {
                        "input": {"type": "string"}, "file": {"type": "string"}}}},
                    "confirmed": {"type": "boolean"}, "expires_in": {"type": "integer"},
                    "resolved": {"type": "integer"}, "total": {"type": "integer"},
                    "conflicts": {"type": "array", "items": {"type": "object", "properties": {
                        "n": {"type": "integer"}, "section": {"type": "string"}, "statement": {"type": ["string", "null"]},
                        "values": {"type": "object"}, "base": {"type": ["string", "null"]},
                        "chosen": {"type": ["string", "null"]}, "take": {"type": ["string", "null"]},
                        "automatic": {"type": "boolean"}, "both": {"type": "object"}}}},
                    "unclassified": {"type": "array", "items": {"type": "object", "properties": {
                        "file": {"type": "string"}, "section": {"type": "string"},
                        "statement": {"type": ["string", "null"]}, "line": {"type": "integer"}}}}}},
            },
        },
    }
