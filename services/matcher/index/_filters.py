"""What a search may require of a point's payload, said once for every engine.

A filter is a conjunction (``must``) and an exclusion list (``must_not``) of
conditions; ``AnyOf`` nests a disjunction. That covers the matcher's hard filters:

    remote or in the job's town   AnyOf(Match("remote_ok", True), MatchAny("places", ["berlin"]))
    salary floor                  Range("salary_max", gte=floor)
    no salary asked, or met       AnyOf(IsEmpty("desired_salary"), Range("desired_salary", lte=top))
    job types                     MatchAny("job_types", ["full_time", "contract"])
    fresh enough                  Range("posted_at", gte=cutoff.timestamp())
    one user                      Match("user_id", user_id)

A condition on a list field holds when any element satisfies it (Qdrant's rule).
Each engine turns a filter into its own objects through a small :class:`Dialect`,
so the rules above are written once (:func:`translate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

__all__ = [
    "AnyOf",
    "Condition",
    "Dialect",
    "IndexFilter",
    "IsEmpty",
    "Match",
    "MatchAny",
    "Range",
    "Value",
    "translate",
]

Value = str | int | bool


@dataclass(frozen=True, slots=True)
class Match:
    """``field`` equals ``value`` (a list field: contains it)."""

    field: str
    value: Value


@dataclass(frozen=True, slots=True)
class MatchAny:
    """``field`` equals one of ``values`` (a list field: shares one with them).
    Strings or integers, not both; at least one."""

    field: str
    values: tuple[str, ...] | tuple[int, ...]

    def __init__(self, field: str, values: Sequence[str] | Sequence[int]) -> None:
        if not values:
            raise ValueError(f"MatchAny({field!r}) needs at least one value")
        object.__setattr__(self, "field", field)
        object.__setattr__(self, "values", tuple(values))


@dataclass(frozen=True, slots=True)
class Range:
    """``gte <= field <= lte`` on a number (datetimes are stored as POSIX seconds)."""

    field: str
    gte: float | None = None
    lte: float | None = None


@dataclass(frozen=True, slots=True)
class IsEmpty:
    """``field`` is absent, null or an empty list."""

    field: str


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one of the conditions holds."""

    conditions: tuple[Condition, ...]

    def __init__(self, *conditions: Condition) -> None:
        if not conditions:
            raise ValueError("AnyOf needs at least one condition")
        object.__setattr__(self, "conditions", conditions)


Condition = Match | MatchAny | Range | IsEmpty | AnyOf


@dataclass(frozen=True, slots=True)
class IndexFilter:
    """Every ``must`` condition holds and no ``must_not`` condition does."""

    must: tuple[Condition, ...] = field(default=())
    must_not: tuple[Condition, ...] = field(default=())

    @classmethod
    def all(cls, *conditions: Condition) -> IndexFilter:
        return cls(must=conditions)


C = TypeVar("C")


class Dialect(Protocol[C]):
    """How one engine spells each kind of condition. ``clause`` builds a nested
    filter, which every engine also accepts as a condition."""

    def match(self, field: str, value: Value) -> C: ...
    def match_any(self, field: str, values: tuple[str, ...] | tuple[int, ...]) -> C: ...
    def range(self, field: str, gte: float | None, lte: float | None) -> C: ...
    def is_empty(self, field: str) -> C: ...
    def clause(self, must: list[C], should: list[C], must_not: list[C]) -> C: ...


def translate(filter: IndexFilter, dialect: Dialect[C]) -> C:
    return dialect.clause(
        [_condition(c, dialect) for c in filter.must],
        [],
        [_condition(c, dialect) for c in filter.must_not],
    )


def _condition(condition: Condition, dialect: Dialect[C]) -> C:
    match condition:
        case Match(field=key, value=value):
            return dialect.match(key, value)
        case MatchAny(field=key, values=values):
            return dialect.match_any(key, values)
        case Range(field=key, gte=gte, lte=lte):
            return dialect.range(key, gte, lte)
        case IsEmpty(field=key):
            return dialect.is_empty(key)
        case AnyOf(conditions=conditions):
            return dialect.clause([], [_condition(c, dialect) for c in conditions], [])
    raise TypeError(f"not a condition: {condition!r}")
