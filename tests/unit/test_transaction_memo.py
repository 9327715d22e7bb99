"""A transaction's memo (flow_memory.kit.db.transaction_memo): what a savepoint remembered
goes with it when it rolls back, what it kept stays, and nothing outlives the transaction."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from flow_memory.kit.db import transaction_memo


def session() -> Session:
    opened = Session(create_engine("sqlite://"))
    opened.execute(text("select 1"))  # a transaction begins
    return opened


def test_a_savepoint_that_rolls_back_takes_what_it_remembered() -> None:
    s = session()
    transaction_memo(s, "payers")["before"] = 1
    kept = s.begin_nested()
    transaction_memo(s, "payers")["kept"] = 2
    kept.commit()
    lost = s.begin_nested()
    transaction_memo(s, "payers")["lost"] = 3
    inner = s.begin_nested()
    transaction_memo(s, "payers")["inner, kept by a savepoint that then rolled back"] = 4
    inner.commit()
    lost.rollback()
    assert dict(transaction_memo(s, "payers")) == {"before": 1, "kept": 2}


def test_an_inner_rollback_leaves_its_parents_memo() -> None:
    s = session()
    outer = s.begin_nested()
    transaction_memo(s, "accounts")["outer"] = 1
    inner = s.begin_nested()
    transaction_memo(s, "accounts")["inner"] = 2
    inner.rollback()
    outer.commit()
    assert dict(transaction_memo(s, "accounts")) == {"outer": 1}


def test_nothing_outlives_the_transaction() -> None:
    for end in ("commit", "rollback"):
        s = session()
        transaction_memo(s, "accounts")["a"] = 1
        getattr(s, end)()
        s.execute(text("select 1"))
        assert dict(transaction_memo(s, "accounts")) == {}, end


def test_kinds_are_kept_apart() -> None:
    s = session()
    transaction_memo(s, "payers")["x"] = "owner-a"
    assert "x" not in transaction_memo(s, "accounts")
