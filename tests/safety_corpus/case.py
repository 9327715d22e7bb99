"""One corpus case: a value or a shape of request material, and what must never be seen again."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tests.safety_corpus.formats import Fakes


@dataclass(frozen=True, eq=False)
class Case:
    """Request material to place into request bodies, paths and headers.

    ``value`` is a string put into text fields (a name, a reason, a note, an identifier, a
    metadata value, a path segment). ``fields`` is a shape merged into a free-form object
    (metadata, contact, a proxy body's top level): a secret-like name, a flag, a secret split
    across two fields. ``needles`` are the strings that must appear nowhere once the server
    has answered (the value and, for an encoded or disguised one, its decoded form)."""

    id: str
    kind: str
    value: str | None = None
    fields: Mapping[str, Any] | None = None
    needles: tuple[str, ...] = ()
    note: str = ""
    borderline: bool = False

    def __post_init__(self) -> None:
        if (self.value is None) == (self.fields is None):
            raise ValueError(f"{self.id}: give a value or fields, not both")


Text = str | tuple[str, ...]
Shape = tuple[Mapping[str, Any], tuple[str, ...]]


def texts(
    kind: str, specs: list[tuple[str, Callable[[Fakes], Text]]], *, note: str = ""
) -> list[Case]:
    """Value cases: each builder gets a generator seeded with the case id and returns the
    value, or the value followed by its decoded forms."""
    cases = []
    for name, build in specs:
        case_id = f"{kind}.{name}"
        built = build(Fakes(case_id))
        value, *decoded = (built,) if isinstance(built, str) else built
        cases.append(Case(case_id, kind, value=value, needles=(value, *decoded), note=note))
    return cases


def shapes(
    kind: str, specs: list[tuple[str, Callable[[Fakes], Shape]]], *, note: str = ""
) -> list[Case]:
    """Shape cases: each builder returns the fields to merge and the strings never to see."""
    cases = []
    for name, build in specs:
        case_id = f"{kind}.{name}"
        fields, needles = build(Fakes(case_id))
        cases.append(Case(case_id, kind, fields=fields, needles=needles, note=note))
    return cases
