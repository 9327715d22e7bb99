"""The machine-readable endpoint contract, generated from the app's own routes.

    python -m flow_memory.contract            # prints docs/INFERENCE_MARKET_ENDPOINTS.json
    python -m flow_memory.contract --write    # rewrites it and the tables in the agent index

Tests compare both files with what this module generates, so the documents cannot drift from
the routes."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from flow_memory.kit.safety import SAFETY_ENVELOPE
from flow_memory.routing.policy import NEXT_ACTIONS

SCHEMA_VERSION = "flow_memory.endpoints.v1"
DOCS = Path(__file__).resolve().parent.parent / "docs"
ENDPOINTS_FILE = DOCS / "INFERENCE_MARKET_ENDPOINTS.json"
INDEX_FILE = DOCS / "INFERENCE_MARKET_INDEX.md"
_PLACEHOLDER = re.compile(r"{([^}:]+)(?::[^}]*)?}")
_SCHEMA_PREFIX = "#/components/schemas/"


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every API route, including those of included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


def scopes_of(route: APIRoute) -> list[str]:
    """The scopes a route accepts (any one of them), read from its auth dependency."""
    for dependency in route.dependant.dependencies:
        name = getattr(dependency.call, "__name__", "")
        if name.startswith("require_"):
            return ["inference:" + s for s in name.removeprefix("require_").split("_or_")]
    return []


def _schema_name(node: Any) -> str | None:
    ref = node.get("$ref") if isinstance(node, dict) else None
    return ref.removeprefix(_SCHEMA_PREFIX) if isinstance(ref, str) else None


def endpoint_contract(app: FastAPI) -> dict[str, Any]:
    """Every route with its key, method, literal template, placeholders, scopes, purpose and
    the names of its request and response schemas in /openapi.json."""
    paths = app.openapi()["paths"]
    endpoints: list[dict[str, Any]] = []
    for route in api_routes(app.routes):
        if not route.include_in_schema:
            continue  # the dashboard's page, not an API endpoint
        for method in sorted(route.methods or ()):
            operation = paths.get(route.path, {}).get(method.lower(), {})
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            success: dict[str, Any] = next(
                (
                    answer
                    for status, answer in sorted(operation.get("responses", {}).items())
                    if status.startswith("2")
                ),
                {},
            )
            answer = success.get("content", {}).get("application/json", {})
            endpoints.append(
                {
                    "key": route.name,
                    "method": method,
                    "template": route.path,
                    "placeholders": _PLACEHOLDER.findall(route.path),
                    "scopes": scopes_of(route),
                    "purpose": route.summary or "",
                    "request_schema": _schema_name(body.get("schema")),
                    "response_schema": _schema_name(answer.get("schema")),
                    "streams": "text/event-stream" in success.get("content", {}),
                }
            )
    return {
        "schema_version": SCHEMA_VERSION,
        "product": "Flow Memory",
        "base_url": "http://127.0.0.1:8765",
        "sdk_base_url": "http://127.0.0.1:8765/v1",
        "openapi": "/openapi.json",
        "auth": "Authorization: Bearer fm_… (a Flow Memory API key); x-flow-memory-scopes narrows",
        "safety": dict(SAFETY_ENVELOPE),
        "endpoints": endpoints,
    }


def render_endpoints(app: FastAPI) -> str:
    return json.dumps(endpoint_contract(app), indent=2, ensure_ascii=False) + "\n"


def endpoint_table(app: FastAPI) -> str:
    """The Markdown table of every endpoint, for the agent index."""
    lines = ["| Key | Method | Route template | Scope | Purpose |", "|---|---|---|---|---|"]
    for e in endpoint_contract(app)["endpoints"]:
        scopes = " or ".join(f"`{s}`" for s in e["scopes"]) or "none"
        lines.append(
            f"| `{e['key']}` | `{e['method']}` | `{e['template']}` | {scopes} | {e['purpose']} |"
        )
    return "\n".join(lines)


def rejection_table() -> str:
    lines = ["| Code | Safe next action |", "|---|---|"]
    lines += [f"| `{code}` | {action} |" for code, action in NEXT_ACTIONS.items()]
    return "\n".join(lines)


def fill_index(text: str, app: FastAPI) -> str:
    """The index with its generated tables replaced by fresh ones."""
    for name, table in (("endpoints", endpoint_table(app)), ("rejections", rejection_table())):
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        head, found, rest = text.partition(begin)
        if not found:
            raise ValueError(f"{INDEX_FILE.name} lacks the {begin} marker")
        _, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"{INDEX_FILE.name} lacks the {end} marker")
        text = f"{head}{begin}\n{table}\n{end}{tail}"
    return text


def main() -> None:
    from flow_memory.app import create_app
    from flow_memory.settings import Settings

    parser = argparse.ArgumentParser(description="Generate the endpoint contract documents.")
    parser.add_argument("--write", action="store_true", help="rewrite the files under docs/")
    args = parser.parse_args()
    app = create_app(Settings(database_url="sqlite://"))
    if not args.write:
        print(render_endpoints(app), end="")
        return
    ENDPOINTS_FILE.write_text(render_endpoints(app))
    INDEX_FILE.write_text(fill_index(INDEX_FILE.read_text(), app))


if __name__ == "__main__":
    main()
