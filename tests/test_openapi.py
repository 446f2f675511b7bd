"""The OpenAPI document: it describes every route the app serves, its references resolve, and the copy committed
in docs/openapi.json is the one the code generates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.api import all_routes
from server.api.openapi import build_document
from server.app import VERSION
from tests.helpers import Api

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "docs" / "openapi.json"
REGENERATE = "regenerate it with `quanzi openapi > docs/openapi.json` and commit the result"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def openapi_path(aiohttp_path: str) -> str:
    """``/a/{user_id:\\d+}/{code:[a-z]{3}}`` -> ``/a/{user_id}/{code}``: drop each variable's regex, nested braces
    included."""
    out: list[str] = []
    i = 0
    while i < len(aiohttp_path):
        ch = aiohttp_path[i]
        if ch != "{":
            out.append(ch)
            i += 1
            continue
        depth, j = 1, i + 1
        while depth:
            depth += {"{": 1, "}": -1}.get(aiohttp_path[j], 0)
            j += 1
        name = aiohttp_path[i + 1:j - 1].split(":", 1)[0]
        out.append("{" + name + "}")
        i = j
    return "".join(out)


@pytest.mark.parametrize(("raw", "expected"), [
    ("/api/users/{user_id:\\d+}", "/api/users/{user_id}"),
    ("/i/{institution_id:\\d+}/members/{user_id:\\d+}", "/i/{institution_id}/members/{user_id}"),
    ("/c/{circle_id:[A-Za-z0-9]{12}}/x", "/c/{circle_id}/x"),
    ("/j/{token:[A-Za-z0-9_-]{16,64}}", "/j/{token}"),
    ("/plain/{name}", "/plain/{name}"),
    ("/healthz", "/healthz"),
])  # fmt: skip
def test_openapi_path_conversion(raw: str, expected: str) -> None:
    assert openapi_path(raw) == expected


def served_operations(app: web.Application) -> set[tuple[str, str]]:
    """(method, OpenAPI path) for every route the router serves, less the static files, automatic HEADs and the
    Socket.IO endpoint (its protocol is written in docs/protocol.md, not in OpenAPI)."""
    routes = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource):
            continue
        info = resource.get_info()
        raw = info.get("formatter") or info.get("path")
        assert isinstance(raw, str), info
        if raw.startswith("/socket.io/"):
            continue
        routes.append((route.method, openapi_path(raw)))
    gets = {path for method, path in routes if method == "GET"}
    return {(method, path) for method, path in routes if not (method == "HEAD" and path in gets)}


def documented_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method in METHODS}


async def fetch_document(api: Api) -> dict[str, Any]:
    reply = await api.call("GET", "/api/openapi.json")
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    assert isinstance(reply.body, dict)
    return reply.body


# --- (a) the served document describes every served route ----------------------------------------------------------

async def test_served_document_is_openapi_3_1(api: Api) -> None:
    doc = await fetch_document(api)
    assert doc["openapi"].startswith("3.1."), doc["openapi"]
    assert doc["info"]["title"] and doc["info"]["version"] == VERSION
    assert isinstance(doc["paths"], dict) and doc["paths"]
    assert isinstance(doc["components"]["schemas"], dict)


async def test_every_served_route_is_documented(api: Api, client: TestClient[web.Request, web.Application]) -> None:
    doc = await fetch_document(api)
    served = served_operations(client.app)
    assert ("GET", "/api/openapi.json") in served  # the walk found the routes at all
    missing = sorted(served - documented_operations(doc))
    assert not missing, "served but missing from the OpenAPI document:\n" + "\n".join(f"{m} {p}" for m, p in missing)


async def test_every_documented_operation_is_served(api: Api, client: TestClient[web.Request, web.Application]) -> None:
    doc = await fetch_document(api)
    phantom = sorted(documented_operations(doc) - served_operations(client.app))
    assert not phantom, "documented but not served:\n" + "\n".join(f"{m} {p}" for m, p in phantom)


async def test_served_document_is_the_generated_one(api: Api) -> None:
    doc = await fetch_document(api)
    assert doc == json.loads(json.dumps(build_document(all_routes(), VERSION)))


# --- (b) structure: bodies, parameters, references -----------------------------------------------------------------

@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return json.loads(json.dumps(build_document(all_routes(), VERSION)))


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def test_every_request_body_references_a_component_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problems = []
    for method, path, operation in _operations(document):
        if "requestBody" not in operation:
            continue
        content = operation["requestBody"].get("content", {})
        if not content:
            problems.append(f"{method} {path}: a requestBody with no content")
        for media_type, media in content.items():
            ref = media.get("schema", {}).get("$ref")
            prefix = "#/components/schemas/"
            if not isinstance(ref, str) or not ref.startswith(prefix):
                problems.append(f"{method} {path} ({media_type}): body schema is not a component $ref: {media}")
            elif ref[len(prefix):] not in schemas:
                problems.append(f"{method} {path} ({media_type}): {ref} is not in components.schemas")
    assert not problems, "\n".join(problems)


def test_routes_with_a_body_document_it_under_the_models_name(document: dict[str, Any]) -> None:
    problems = []
    for route in all_routes():
        operation = document["paths"][route.path][route.method.lower()]
        body = operation.get("requestBody")
        if route.body is None:
            if body is not None:
                problems.append(f"{route.method} {route.path}: takes no body, yet documents one")
            continue
        ref = body["content"]["application/json"]["schema"].get("$ref") if body else None
        if ref != f"#/components/schemas/{route.body.__name__}":
            problems.append(f"{route.method} {route.path}: body {route.body.__name__} documented as {ref}")
    assert not problems, "\n".join(problems)


def _refs(node: Any, where: str = "#") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from _refs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, f"{where}/{i}")


def _resolve(doc: dict[str, Any], ref: str) -> bool:
    if not ref.startswith("#/"):
        return False  # the document is self-contained: no external references
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs = list(_refs(document))
    assert refs, "no $ref found at all: the walk is broken"
    broken = [f"{where}: {ref}" for where, ref in refs if not _resolve(document, ref)]
    assert not broken, "unresolved $ref:\n" + "\n".join(broken)


def test_path_parameters_match_the_path_templates(document: dict[str, Any]) -> None:
    problems = []
    for method, path, operation in _operations(document):
        in_path = {part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")}
        declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "path"}
        if in_path != declared:
            problems.append(f"{method} {path}: template has {sorted(in_path)}, parameters {sorted(declared)}")
        if any(not p.get("required") for p in operation.get("parameters", []) if p.get("in") == "path"):
            problems.append(f"{method} {path}: a path parameter is not required")
    assert not problems, "\n".join(problems)


def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


def test_document_validates_against_the_openapi_3_1_schema(document: dict[str, Any]) -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    try:
        validator.validate(document)
    except Exception as exc:  # its errors repeat the whole document: keep the head, which names the problem
        pytest.fail(f"not a valid OpenAPI 3.1 document: {type(exc).__name__}: {str(exc)[:300]}", pytrace=False)


# --- (c) the committed copy is current ------------------------------------------------------------------------------

def _difference(committed: dict[str, Any], generated: dict[str, Any]) -> str:
    lines = []
    for key in sorted(set(committed) | set(generated)):
        if committed.get(key) != generated.get(key) and key != "paths":
            lines.append(f"  top-level {key!r} differs")
    old, new = committed.get("paths", {}), generated.get("paths", {})
    for path in sorted(set(old) | set(new)):
        if path not in old:
            lines.append(f"  missing path {path}")
        elif path not in new:
            lines.append(f"  stale path {path}")
        elif old[path] != new[path]:
            lines.append(f"  changed path {path}")
    return "\n".join(lines[:40])


def test_committed_document_is_current() -> None:
    assert COMMITTED.is_file(), f"{COMMITTED.relative_to(ROOT)} is missing: {REGENERATE}"
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    generated = json.loads(json.dumps(build_document(all_routes(), VERSION)))
    assert committed == generated, (
        f"docs/openapi.json is out of date with the routes: {REGENERATE}.\n{_difference(committed, generated)}"
    )


def test_cli_prints_the_generated_document(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("QUANZI_")}
    env.update({
        "QUANZI_SECRET_KEY": "s" * 40,
        "QUANZI_DATA_DIR": str(tmp_path / "data"),
        "QUANZI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
    })
    result = subprocess.run([sys.executable, "-m", "server.cli", "openapi"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(json.dumps(build_document(all_routes(), VERSION)))
