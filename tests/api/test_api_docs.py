"""The API docs page: served with every file it needs from this app (nothing from elsewhere),
titled Flow Memory, naming no other product. tests/browser/test_api_docs.py renders it."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.docs.test_public_names import PATTERN

LOCAL_REFERENCE = re.compile(r"""(?:src|href)="([^"]*)\"""")


def test_the_docs_page_names_flow_memory_and_loads_only_local_files(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert docs.headers["content-type"].startswith("text/html")
    assert "<title>Flow Memory API</title>" in docs.text
    assert "'/openapi.json'" in docs.text
    references = LOCAL_REFERENCE.findall(docs.text)
    assert len(references) == 3  # the viewer's script and styles, and the icon
    for reference in references:
        assert reference.startswith("/"), reference
        asset = client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.content
    found = PATTERN.search(docs.text)
    assert found is None, found.group(0) if found else ""


def test_the_browser_may_load_nothing_from_another_origin(client: TestClient) -> None:
    policy = client.get("/docs").headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "http" not in policy


def test_redoc_is_not_served(client: TestClient) -> None:
    # Its viewer loads a logo from the internet and links to its maker: /docs is the one page.
    assert client.get("/redoc").status_code == 404
