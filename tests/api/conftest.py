"""Fixtures the API tests share: a seller's and a buyer's headers."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from tests.factories import Headers, buyer_headers, seller_headers


@pytest.fixture
def seller(app: FastAPI) -> Headers:
    return seller_headers(app)


@pytest.fixture
def buyer(app: FastAPI) -> Headers:
    return buyer_headers(app)
