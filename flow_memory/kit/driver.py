"""Statements run on the database driver directly, compiled once per dialect: for the hot write
paths (the market writer, the ledger, the job board), where SQLAlchemy's execution path (an
execution context, events, result objects; the ORM's unit of work) costs more than the
statement. Values go through their columns' own bind processors, so what is stored is what
SQLAlchemy would store."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, DateTime, Insert, Select, Table, Update, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from flow_memory.kit.db import UTCDateTime, run_on_driver


class BulkWrite:
    """One insert or update run for many rows, handed to the driver as one ``executemany``.

    The market writer writes thousands of rows a second (orders, fills, feed events, usage
    records and rollups), and SQLAlchemy's general executemany path costs more per row than
    the write: here the statement is compiled once per dialect and set of parameters, and
    each value goes through its parameter's bind processor, the same one SQLAlchemy applies,
    so what is stored is identical. Rows are mappings by parameter name (an insert's are its
    column names), all with the first row's names; a statement that needs more parameters
    than given (a Python-side column default) goes through SQLAlchemy.

    ``dialects`` may give, per dialect name, the statement to run instead (an insert with an
    ``ON CONFLICT`` clause, say)."""

    def __init__(
        self, statement: Insert | Update, dialects: Mapping[str, Insert | Update] | None = None
    ) -> None:
        self._statement = statement
        self._dialects = dict(dialects or {})
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled | None] = {}

    def execute(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        compiled = self._compile(connection, tuple(rows[0]))
        if compiled is None:
            connection.execute(self._statement_for(connection), list(rows))
            return
        on_driver(connection, compiled.sql, compiled.parameters(rows), many=True)

    def execute_rows(
        self, connection: Connection, names: tuple[str, ...], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Write rows given as tuples of values in the order of ``names``: the hot paths build
        them straight from their objects, without a mapping per row."""
        if not rows:
            return
        compiled = self._compile(connection, names)
        if compiled is None:
            dicts = [dict(zip(names, row, strict=True)) for row in rows]
            connection.execute(self._statement_for(connection), dicts)
            return
        on_driver(connection, compiled.sql, compiled.rows(names, rows), many=True)

    def _statement_for(self, connection: Connection) -> Insert | Update:
        return self._dialects.get(connection.dialect.name, self._statement)

    def _compile(self, connection: Connection, names: tuple[str, ...]) -> _Compiled | None:
        key = (connection.dialect.name, names)
        if key not in self._compiled:
            statement = self._statement_for(connection)
            self._compiled[key] = _Compiled.build(statement, connection.dialect, names)
        return self._compiled[key]


class DriverQuery:
    """A fixed query run on the driver directly, compiled once per dialect: for statements run
    once per market batch, where SQLAlchemy's execution path costs more than the query. Its
    parameters are given by name; it answers plain row tuples (an insert's, those it returns)."""

    def __init__(self, statement: Select[Any] | Update | Insert) -> None:
        self._statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled] = {}

    def rows(self, connection: Connection, parameters: Mapping[str, Any]) -> list[Any]:
        names = tuple(parameters)
        key = (connection.dialect.name, names)
        compiled = self._compiled.get(key)
        if compiled is None:
            built = _Compiled.build(self._statement, connection.dialect, names)
            if built is None:
                raise ValueError(f"the query takes other parameters than {names}")
            compiled = self._compiled[key] = built
        return on_driver(connection, compiled.sql, compiled.parameters([parameters])[0])


def on_driver(
    connection: Connection, sql: str, parameters: Any, *, many: bool = False
) -> list[Any]:
    """Run ``sql`` on the connection's driver connection, in its transaction (begun first if
    it has none, as ``exec_driver_sql`` would): without SQLAlchemy's execution context, events
    and result objects. The driver's errors come out as SQLAlchemy's, as from any other
    statement. Returns the rows a query answers (none for ``many``)."""
    if not connection.in_transaction():
        connection.begin()
    return run_on_driver(connection, sql, parameters, many=many)


def dialect_inserts(table: Table) -> dict[str, postgresql.Insert | sqlite.Insert]:
    """An insert into ``table`` per supported dialect, for clauses only a dialect's own insert
    offers (``ON CONFLICT``)."""
    return {"postgresql": postgresql.insert(table), "sqlite": sqlite.insert(table)}


def bulk_insert(table: Table) -> BulkWrite:
    """A plain insert into ``table``, for many rows at a time."""
    return BulkWrite(insert(table))


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the parameters, in the statement's order
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool
    # Which processors convert times: a batch's rows share one, converted once (``_LastValue``);
    # other values differ from row to row, and remembering the last would only cost.
    of_times: tuple[bool, ...]

    @classmethod
    def build(
        cls, statement: Insert | Update | Select[Any], dialect: Dialect, names: tuple[str, ...]
    ) -> _Compiled | None:
        compiled = statement.compile(dialect=dialect, column_keys=list(names))
        order = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.binds)
        if sorted(order) != sorted(names):
            return None  # a default or a renamed parameter: let SQLAlchemy fill it in
        types = [compiled.binds[name].type for name in order]
        processors = tuple(t.dialect_impl(dialect).bind_processor(dialect) for t in types)
        of_times = tuple(isinstance(t, UTCDateTime | DateTime) for t in types)
        return cls(compiled.string, order, processors, compiled.positional, of_times)

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        # Every value is read in one call; only those with a processor are passed through it.
        values_of = itemgetter(*self.names)
        if len(self.names) == 1:
            return self._converted([(values_of(row),) for row in rows])
        return self._converted([values_of(row) for row in rows])

    def rows(self, names: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> list[Any]:
        """The driver's parameters for rows of values in the order of ``names``."""
        if names != self.names:  # the statement takes them in another order
            values_of = itemgetter(*(names.index(name) for name in self.names))
            if len(self.names) == 1:
                return self._converted([(values_of(row),) for row in rows])
            rows = [values_of(row) for row in rows]
        return self._converted(rows)

    def _converted(self, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Rows of values in the statement's order, through their bind processors."""
        processed = [
            (index, _LastValue(process) if of_time else process)
            for index, (process, of_time) in enumerate(
                zip(self.processors, self.of_times, strict=True)
            )
            if process is not None
        ]
        out: list[Any] = []
        for row in rows:
            values = list(row)
            for index, process in processed:
                values[index] = process(values[index])
            out.append(values if self.positional else dict(zip(self.names, values, strict=True)))
        return out


class _LastValue:
    """A bind processor that remembers its last answer: the rows of a batch share one time, and
    that one object is converted once, not once per row."""

    __slots__ = ("answer", "process", "value")

    def __init__(self, process: Callable[[Any], Any]) -> None:
        self.process = process
        self.value: Any = _NOTHING
        self.answer: Any = None

    def __call__(self, value: Any) -> Any:
        if value is not self.value:
            self.answer = self.process(value)
            self.value = value
        return self.answer


_NOTHING = object()
