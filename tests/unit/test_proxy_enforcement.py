"""Whether a proxied call's payer is enforced: read once a second, and calls that need the same
payer read together share one read instead of each taking a thread."""

from __future__ import annotations

import asyncio
import threading

import pytest

from flow_memory.proxy.paying import ENFORCEMENT_SECONDS, Enforcement


class Clock:
    """Test double for the monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Reads:
    """Test double for the account read: counts reads and answers when released."""

    def __init__(self, enforcement: Enforcement, clock: Clock, *, enforced: bool) -> None:
        self.enforcement, self.clock, self.enforced = enforcement, clock, enforced
        self.count = 0
        self.release = threading.Event()
        self.started = threading.Event()
        self.finished = threading.Event()
        self.fail = False

    def __call__(self, payer: str):  # type: ignore[no-untyped-def]
        self.count += 1
        self.started.set()
        assert self.release.wait(30)
        try:
            if self.fail:
                raise RuntimeError("the database is unavailable")
            return self.enforcement.remember(
                payer, account_id="acct_1", enforced=self.enforced, read_at=self.clock.now
            )
        finally:
            self.finished.set()


async def happened(event: threading.Event) -> None:
    """Wait (off the loop) for what the read's thread signals; the timeout is a guard."""
    assert await asyncio.to_thread(event.wait, 30)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_calls_that_need_a_payer_read_together_share_one_read() -> None:
    async def test() -> None:
        clock = Clock()
        enforcement = Enforcement(monotonic=clock)
        reads = Reads(enforcement, clock, enforced=True)
        calls = [asyncio.create_task(enforcement.known("agent-1", reads)) for _ in range(32)]
        await settle()
        assert not any(call.done() for call in calls)  # they wait for the one read
        reads.release.set()
        answers = await asyncio.gather(*calls)
        assert reads.count == 1
        assert {answer.enforced for answer in answers} == {True}
        # Within the second, no further read.
        assert (await enforcement.known("agent-1", reads)).enforced
        assert reads.count == 1

    asyncio.run(test())


def test_an_unenforced_payer_read_a_second_ago_is_answered_at_once_while_it_is_read_again() -> None:
    async def test() -> None:
        clock = Clock()
        enforcement = Enforcement(monotonic=clock)
        enforcement.remember("agent-1", account_id="acct_1", enforced=False, read_at=clock.now)
        clock.now += ENFORCEMENT_SECONDS + 0.5
        reads = Reads(enforcement, clock, enforced=True)  # an admin enforced it meanwhile
        answers = [await enforcement.known("agent-1", reads) for _ in range(10)]
        assert {answer.enforced for answer in answers} == {False}
        await happened(reads.started)
        assert reads.count == 1  # ten calls, one read
        reads.release.set()
        await happened(reads.finished)
        assert (await enforcement.known("agent-1", reads)).enforced
        assert reads.count == 1

    asyncio.run(test())


def test_an_enforced_or_long_unread_payer_is_never_answered_from_an_old_read() -> None:
    async def test() -> None:
        clock = Clock()
        enforcement = Enforcement(monotonic=clock)
        enforcement.remember("enforced", account_id="acct_1", enforced=True, read_at=clock.now)
        enforcement.remember("idle", account_id="acct_2", enforced=False, read_at=clock.now)
        clock.now += 2 * ENFORCEMENT_SECONDS + 0.1
        for payer in ("enforced", "idle"):
            reads = Reads(enforcement, clock, enforced=False)
            call = asyncio.create_task(enforcement.known(payer, reads))
            await settle()
            assert not call.done()
            reads.release.set()
            assert (await call).enforced is False
            assert reads.count == 1

    asyncio.run(test())


def test_a_failed_read_reaches_every_waiting_call_and_the_next_call_reads_again() -> None:
    async def test() -> None:
        clock = Clock()
        enforcement = Enforcement(monotonic=clock)
        reads = Reads(enforcement, clock, enforced=False)
        reads.fail = True
        calls = [asyncio.create_task(enforcement.known("agent-1", reads)) for _ in range(3)]
        await settle()
        reads.release.set()
        for call in calls:
            with pytest.raises(RuntimeError, match="unavailable"):
                await call
        reads.fail = False
        assert (await enforcement.known("agent-1", reads)).enforced is False
        assert reads.count == 2

    asyncio.run(test())


def test_a_caller_that_goes_away_does_not_cancel_the_read_the_others_wait_for() -> None:
    async def test() -> None:
        clock = Clock()
        enforcement = Enforcement(monotonic=clock)
        reads = Reads(enforcement, clock, enforced=True)
        leaving = asyncio.create_task(enforcement.known("agent-1", reads))
        staying = asyncio.create_task(enforcement.known("agent-1", reads))
        await settle()
        leaving.cancel()
        await settle()
        reads.release.set()
        assert (await staying).enforced
        assert reads.count == 1

    asyncio.run(test())
