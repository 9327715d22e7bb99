"""The operator's credential resolver: environment names, the 0600 secrets file, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from flow_memory.proxy.resolver import CredentialResolver, SecretsFileRefused, environment_name

REF = "secret://inference/provider-alpha"


def test_a_reference_maps_to_one_environment_name() -> None:
    assert environment_name(REF) == "FLOW_MEMORY_SECRET_INFERENCE_PROVIDER_ALPHA"
    assert environment_name("secret://a.b/c~d") == "FLOW_MEMORY_SECRET_A_B_C_D"


def test_the_environment_is_read_first(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({REF: "from-file"}))
    secrets.chmod(0o600)
    resolver = CredentialResolver(
        environ={"FLOW_MEMORY_SECRET_INFERENCE_PROVIDER_ALPHA": "from-env"},
        secrets_file=str(secrets),
    )
    assert resolver.resolve(REF) == "from-env"
    assert CredentialResolver(environ={}, secrets_file=str(secrets)).resolve(REF) == "from-file"


def test_unknown_references_and_other_schemes_resolve_to_nothing(tmp_path: Path) -> None:
    resolver = CredentialResolver(environ={}, secrets_file=str(tmp_path / "absent.json"))
    assert resolver.resolve(REF) is None
    assert resolver.resolve("https://example.invalid/key") is None


def test_a_changed_file_is_read_again(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({REF: "first"}))
    secrets.chmod(0o600)
    resolver = CredentialResolver(environ={}, secrets_file=str(secrets))
    assert resolver.resolve(REF) == "first"
    secrets.write_text(json.dumps({REF: "second"}))
    os.utime(secrets, (1, 1))  # a new modification time, whatever the clock's resolution
    assert resolver.resolve(REF) == "second"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o666])
def test_a_file_others_can_read_is_refused_unread(tmp_path: Path, mode: int) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({REF: "value"}))
    secrets.chmod(mode)
    with pytest.raises(SecretsFileRefused, match="chmod 600") as refused:
        CredentialResolver(environ={}, secrets_file=str(secrets)).resolve(REF)
    assert "value" not in str(refused.value)


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"secret://x": 3}'])
def test_a_malformed_file_is_refused_without_its_content(tmp_path: Path, content: str) -> None:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(content)
    secrets.chmod(0o600)
    with pytest.raises(SecretsFileRefused) as refused:
        CredentialResolver(environ={}, secrets_file=str(secrets)).resolve(REF)
    assert content not in str(refused.value)
