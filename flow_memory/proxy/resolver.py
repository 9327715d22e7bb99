"""The operator's credential resolver: turns ``secret://…`` references into values at call time.

Values come from the operator's environment (``FLOW_MEMORY_SECRET_<PATH>``, the reference's
path upper-cased with every other character as ``_``) or from a JSON secrets file readable
only by its owner (mode 0600). They are never stored, logged or returned by Flow Memory.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("flow_memory.proxy.resolver")

PREFIX = "secret://"
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


@lru_cache(maxsize=4096)
def environment_name(reference: str) -> str:
    """``secret://inference/provider-alpha`` → ``FLOW_MEMORY_SECRET_INFERENCE_PROVIDER_ALPHA``."""
    path = reference.removeprefix(PREFIX)
    return "FLOW_MEMORY_SECRET_" + _NOT_NAME.sub("_", path).strip("_").upper()


class SecretsFileRefused(RuntimeError):
    """The secrets file is readable by others or is not a JSON object of strings."""


class CredentialResolver:
    """Resolve references from the environment first, then from the secrets file."""

    def __init__(
        self, *, environ: Mapping[str, str] | None = None, secrets_file: str | None = None
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._path = Path(secrets_file) if secrets_file else None
        self._loaded: tuple[float, dict[str, str]] | None = None

    def resolve(self, reference: str) -> str | None:
        """The secret value, or None when the operator has configured none for it."""
        if not reference.startswith(PREFIX):
            return None
        value = self._environ.get(environment_name(reference))
        if value:
            return value
        return self._file().get(reference)

    def _file(self) -> dict[str, str]:
        if self._path is None:
            return {}
        try:
            info = self._path.stat()
        except FileNotFoundError:
            return {}
        if self._loaded is not None and self._loaded[0] == info.st_mtime:
            return self._loaded[1]
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            # Naming the file is safe; its contents are never read when refused.
            raise SecretsFileRefused(f"{self._path} must be readable only by its owner (chmod 600)")
        try:
            document = json.loads(self._path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise SecretsFileRefused(f"{self._path} is not readable JSON") from None
        if not isinstance(document, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in document.items()
        ):
            raise SecretsFileRefused(f"{self._path} must be a JSON object of reference: value")
        self._loaded = (info.st_mtime, dict(document))
        return self._loaded[1]
