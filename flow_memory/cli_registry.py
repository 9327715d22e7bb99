"""``flow-memory registry publish FILE``: publish a model, agent or solution from a manifest.

The manifest (TOML, or JSON for a ``.json`` file) is the request body of the registry route
for its ``kind`` (``model``, ``agent`` or ``solution``), plus that ``kind``. An entry that is
not registered yet is registered with the manifest's version; one that is gets the manifest's
version as a new version. A version already published with the same terms is left as it is
(publishing from a repository twice is harmless); with other terms it is refused, since a
published version never changes. The command is a plain client of the HTTP API: the key is
read from FLOW_MEMORY_API_KEY and needs inference:publish."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

API_KEY_ENV = "FLOW_MEMORY_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8765"
KINDS = {"model": "models", "agent": "agents", "solution": "solutions"}
# What describes the entry rather than one version: sent when registering only.
ENTRY_FIELDS = ("slug", "display_name", "description", "tags", "license")


class ManifestError(Exception):
    """A manifest that cannot be read or lacks what the command needs."""


@dataclass(frozen=True)
class Outcome:
    action: str  # registered | versioned | unchanged
    slug: str
    version: str


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``registry`` command."""
    registry = commands.add_parser("registry", help="the registry of models, agents, solutions")
    registry_commands = registry.add_subparsers(dest="registry_command", required=True)
    publish = registry_commands.add_parser(
        "publish",
        help="publish a model, agent or solution from a TOML or JSON manifest",
        description=f"Register an entry or publish a new version of it. The key is read from "
        f"{API_KEY_ENV} and needs inference:publish.",
    )
    publish.add_argument("file", type=Path, help="the manifest: .toml, or .json")
    publish.add_argument("--flow-memory-url", default=None, help=f"default {DEFAULT_URL}")


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest as a dict, with ``kind`` checked."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror}") from None
    try:
        if path.suffix.lower() == ".json":
            manifest = json.loads(raw)
        else:
            manifest = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ManifestError(f"{path} is not valid {_format(path)}: {error}") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path} must hold one object (a table)")
    if manifest.get("kind") not in KINDS:
        raise ManifestError(f"{path}: kind must be one of {', '.join(KINDS)}")
    if not isinstance(manifest.get("slug"), str):
        raise ManifestError(f"{path}: slug (publisher/name) is required")
    return manifest


def _format(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "TOML"


class PublishError(Exception):
    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.status = status
        self.error = error


def publish_manifest(client: httpx.Client, manifest: dict[str, Any]) -> Outcome:
    """Register the entry, or publish the manifest's version of it; idempotent per version."""
    kind = manifest["kind"]
    body = {name: value for name, value in manifest.items() if name != "kind"}
    body.setdefault("version", "1.0.0")
    plural = KINDS[kind]
    slug, version = body["slug"], body["version"]
    entry_path = f"/inference/registry/{plural}/{slug}"
    existing = client.get(entry_path, params={"version": version})
    if existing.status_code == 200:
        if _same_terms(existing.json()["version"], body, kind):
            return Outcome("unchanged", slug, version)
        raise PublishError(
            409,
            {
                "code": "version_exists",
                "message": f"{slug}@{version} is published with other terms and never changes: "
                "raise the version in the manifest",
            },
        )
    if existing.status_code not in (404, 422):
        raise PublishError(existing.status_code, _error_of(existing))
    if _error_of(existing).get("field") == "slug":  # not registered yet
        answer = client.post(f"/inference/registry/{plural}", json=body)
        action = "registered"
    else:
        versioned = {name: value for name, value in body.items() if name not in ENTRY_FIELDS}
        answer = client.post(f"{entry_path}/versions", json=versioned)
        action = "versioned"
    if answer.status_code != 201:
        raise PublishError(answer.status_code, _error_of(answer))
    return Outcome(action, slug, version)


def _same_terms(published: dict[str, Any], body: dict[str, Any], kind: str) -> bool:
    spec = body.get(kind, {})
    pricing = body.get("pricing")
    same_pricing = pricing is None or (
        published["pricing"] is not None
        and published["pricing"]["model"] == pricing.get("model")
        and str(published["pricing"]["price"]) == str(pricing.get("price"))
    )
    if kind == "solution":
        pins = published["spec"]
        same_spec = all(
            pins[side]["slug"] == spec.get(side, {}).get("slug")
            and pins[side]["version"] == spec.get(side, {}).get("version")
            for side in ("agent", "model")
        )
    else:
        same_spec = all(published["spec"].get(name) == value for name, value in spec.items())
    return bool(
        same_spec and same_pricing and published["royalty_bps"] == body.get("royalty_bps", 0)
    )


def _error_of(answer: httpx.Response) -> dict[str, Any]:
    try:
        error = answer.json()["error"]
    except (ValueError, KeyError, TypeError):
        return {"code": "unexpected_answer", "message": f"HTTP {answer.status_code}"}
    return dict(error)


def run(args: argparse.Namespace) -> int:
    """Run ``registry publish``: 0 when published or unchanged, 1 when refused, 2 on misuse."""
    key = os.environ.get(API_KEY_ENV, "")
    if not key:
        print(f"flow-memory: set {API_KEY_ENV} to a key with inference:publish", file=sys.stderr)
        return 2
    try:
        manifest = load_manifest(args.file)
    except ManifestError as error:
        print(f"flow-memory: {error}", file=sys.stderr)
        return 2
    base_url = args.flow_memory_url or os.environ.get("FLOW_MEMORY_URL", DEFAULT_URL)
    headers = {"authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            outcome = publish_manifest(client, manifest)
    except PublishError as error:
        detail = error.error
        where = f" ({detail['field']})" if detail.get("field") else ""
        print(f"flow-memory: refused{where}: {detail.get('message', '')}", file=sys.stderr)
        if detail.get("hint"):
            print(f"  hint: {detail['hint']}", file=sys.stderr)
        return 1
    except httpx.HTTPError as error:
        print(f"flow-memory: cannot reach {base_url}: {error}", file=sys.stderr)
        return 1
    print(f"{outcome.action}: {outcome.slug}@{outcome.version}")
    return 0
