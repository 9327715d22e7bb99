"""Where market commands run: the market writer in this process (``LocalMarket``), or in a
process of its own (``flow_memory.market.process.MarketProcess``). Routes and the order edge
hand commands to ``app.state.market`` and answer what it returns, the same whichever runs it.
"""

from __future__ import annotations

from typing import Any, Protocol

from flow_memory.market.writer import Command, MarketWriter


class Market(Protocol):
    """Runs market commands (``flow_memory.market.orders``, ``reservations``, ``snapshots``)."""

    async def run(self, command: Command) -> Any:
        """Apply a command; its answer once its batch has committed."""
        ...

    def execute(self, command: Command) -> Any:
        """The same, blocking the calling thread (never an event loop's)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class LocalMarket:
    """The market writer in this process."""

    def __init__(self, writer: MarketWriter) -> None:
        self.writer = writer

    async def run(self, command: Command) -> Any:
        return await self.writer.run(command)

    def execute(self, command: Command) -> Any:
        return self.writer.execute(command)

    def start(self) -> None:
        """Nothing to start: the writer's thread starts with its first command."""

    def stop(self) -> None:
        self.writer.stop()
