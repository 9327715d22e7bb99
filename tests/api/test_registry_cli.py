"""``flow-memory registry publish FILE`` against the app: register, new version, idempotent
re-publish, refused changes, and manifests it cannot read."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from flow_memory import cli_registry
from flow_memory.cli_registry import ManifestError, PublishError, load_manifest, publish_manifest
from tests.api.test_registry import publisher_headers

MODEL_TOML = """
kind = "model"
slug = "acme/swift-7b"
display_name = "Swift 7B"
description = "A fast chat model"
tags = ["chat"]
license = "apache-2.0"
version = "{version}"
royalty_bps = 250

[pricing]
model = "per_token"
price = {price}

[model]
modality = "chat"
compatible_api = ["chat_completions"]
context_window = 32768
tool_calling = true
family = "swift"
"""


def _manifest(tmp_path: Path, version: str = "1.0.0", price: str = "0.0000005") -> Path:
    path = tmp_path / "flow-memory.toml"
    path.write_text(MODEL_TOML.format(version=version, price=price))
    return path


@pytest.fixture
def publisher(app: FastAPI, client: TestClient) -> TestClient:
    client.headers.update(publisher_headers(app))
    return client


class TestPublishManifest:
    def test_registers_then_versions_then_leaves_a_version_alone(
        self, publisher: TestClient, tmp_path: Path
    ) -> None:
        first = publish_manifest(publisher, load_manifest(_manifest(tmp_path)))
        assert (first.action, first.slug, first.version) == ("registered", "acme/swift-7b", "1.0.0")
        again = publish_manifest(publisher, load_manifest(_manifest(tmp_path)))
        assert again.action == "unchanged"
        newer = publish_manifest(publisher, load_manifest(_manifest(tmp_path, "1.1.0", "0.000001")))
        assert newer.action == "versioned"
        read = publisher.get("/inference/registry/models/acme/swift-7b").json()
        assert read["version"]["version"] == "1.1.0"
        assert read["entry"]["display_name"] == "Swift 7B"

    def test_a_published_version_with_other_terms_is_refused(
        self, publisher: TestClient, tmp_path: Path
    ) -> None:
        publish_manifest(publisher, load_manifest(_manifest(tmp_path)))
        with pytest.raises(PublishError) as refused:
            publish_manifest(publisher, load_manifest(_manifest(tmp_path, price="0.9")))
        assert refused.value.error["code"] == "version_exists"

    def test_the_apis_refusal_is_passed_on(self, publisher: TestClient, tmp_path: Path) -> None:
        manifest = load_manifest(_manifest(tmp_path))
        manifest["slug"] = "globex/swift"
        with pytest.raises(PublishError) as refused:
            publish_manifest(publisher, manifest)
        assert refused.value.status == 403
        assert refused.value.error["code"] == "namespace_not_yours"

    def test_a_json_manifest(self, publisher: TestClient, tmp_path: Path) -> None:
        manifest = load_manifest(_manifest(tmp_path))
        path = tmp_path / "agent.json"
        path.write_text(
            json.dumps(
                {
                    "kind": "agent",
                    "slug": "acme/helper",
                    "display_name": "Helper",
                    "license": "mit",
                    "pricing": {"model": "per_request", "price": 0.01},
                    "agent": {"requirements": {"min_context_window": 1000}},
                }
            )
        )
        publish_manifest(publisher, manifest)
        outcome = publish_manifest(publisher, load_manifest(path))
        assert (outcome.action, outcome.slug) == ("registered", "acme/helper")


class TestManifestFiles:
    @pytest.mark.parametrize(
        ("name", "text", "says"),
        [
            ("m.toml", "kind = ", "not valid TOML"),
            ("m.json", "{", "not valid JSON"),
            ("m.json", "[]", "one object"),
            ("m.toml", 'kind = "dataset"\nslug = "a/b"', "kind must be one of"),
            ("m.toml", 'kind = "model"', "slug"),
        ],
    )
    def test_unreadable_manifests(self, tmp_path: Path, name: str, text: str, says: str) -> None:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(ManifestError, match=says):
            load_manifest(path)

    def test_a_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ManifestError, match="cannot read"):
            load_manifest(tmp_path / "absent.toml")

    def test_the_command_needs_a_key(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.delenv(cli_registry.API_KEY_ENV, raising=False)
        args = argparse.Namespace(file=_manifest(tmp_path), flow_memory_url=None)
        assert cli_registry.run(args) == 2
        assert cli_registry.API_KEY_ENV in capsys.readouterr().err
