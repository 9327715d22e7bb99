"""Registry rules that decide, in plain Python: slugs, version order, and compatibility.

Compatibility of an agent with a model: the model must offer one of the APIs the agent speaks
(any, when it names none), a context window at least the agent's minimum, tool calling when
the agent needs it, a family among those the agent allows (any, when it names none), and a
modality among those it allows (any, when it names none). Each failed requirement is reported
with its own code, so a user sees why a pair does not fit."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

PUBLISHER_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,63}$"
SEMVER_PATTERN = (
    r"^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_PUBLISHER = re.compile(PUBLISHER_PATTERN)
_SEMVER = re.compile(SEMVER_PATTERN)


def valid_publisher(publisher_id: str) -> bool:
    """Whether an owner id can name a namespace (lower-case letters, digits, . _ -)."""
    return bool(_PUBLISHER.fullmatch(publisher_id))


def split_slug(slug: str) -> tuple[str, str]:
    publisher, _, name = slug.partition("/")
    return publisher, name


@dataclass(frozen=True, order=True)
class Version:
    """A semantic version, ordered by precedence (a pre-release before its release)."""

    major: int
    minor: int
    patch: int
    # (0, identifiers…) for a pre-release, (1,) for a release: sorts a release last.
    rank: tuple[object, ...] = field(compare=True)
    prerelease: str = field(default="", compare=False)

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{self.prerelease}" if self.prerelease else core


def parse_version(text: str) -> Version:
    """Parse ``MAJOR.MINOR.PATCH[-PRERELEASE]``; ValueError otherwise."""
    match = _SEMVER.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a semantic version")
    major, minor, patch, pre = match.groups()
    rank: tuple[object, ...] = (1,)
    if pre:
        # Numeric identifiers sort numerically and before alphanumeric ones.
        rank = (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return Version(int(major), int(minor), int(patch), rank, pre or "")


@dataclass(frozen=True)
class ModelFacts:
    """What a model version offers."""

    modality: str
    apis: frozenset[str]
    context_window: int
    tool_calling: bool
    family: str


@dataclass(frozen=True)
class AgentNeeds:
    """What an agent version requires of a model."""

    apis: frozenset[str] = frozenset()
    min_context_window: int = 0
    tool_calling: bool = False
    families: frozenset[str] = frozenset()
    modalities: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Mismatch:
    requirement: str
    message: str


def mismatches(needs: AgentNeeds, model: ModelFacts) -> list[Mismatch]:
    """Every requirement of the agent the model fails, in a fixed order; empty: compatible."""
    found: list[Mismatch] = []
    if needs.apis and not needs.apis & model.apis:
        found.append(
            Mismatch(
                "apis",
                f"the agent speaks {', '.join(sorted(needs.apis))}; the model offers "
                f"{', '.join(sorted(model.apis)) or 'no API'}",
            )
        )
    if model.context_window < needs.min_context_window:
        found.append(
            Mismatch(
                "min_context_window",
                f"the agent needs a context window of {needs.min_context_window} tokens; the "
                f"model has {model.context_window}",
            )
        )
    if needs.tool_calling and not model.tool_calling:
        found.append(Mismatch("tool_calling", "the agent calls tools; the model does not"))
    if needs.families and model.family not in needs.families:
        found.append(
            Mismatch(
                "families",
                f"the agent allows the families {', '.join(sorted(needs.families))}; the "
                f"model is of {model.family}",
            )
        )
    if needs.modalities and model.modality not in needs.modalities:
        found.append(
            Mismatch(
                "modalities",
                f"the agent works with {', '.join(sorted(needs.modalities))}; the model is "
                f"{model.modality}",
            )
        )
    return found


def compatible(needs: AgentNeeds, model: ModelFacts) -> bool:
    return not mismatches(needs, model)


def api_text(apis: Sequence[str]) -> str:
    """APIs as searchable text: `` a b `` (a space at each end, so LIKE '% a %' finds one)."""
    return f" {' '.join(sorted(set(apis)))} " if apis else " "
