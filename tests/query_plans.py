"""MongoDB's index rules applied to a recorded query: the suite's stand-in for `explain()`.

The embedded server plans queries its own way (SQLite), so its `explain` tells nothing about
MongoDB. These are the rules MongoDB's planner follows, applied to the indexes the product
declares (`graphql_api/database.py`), for every query the suite recorded (`tests/query_log.py`):

- An index serves a query only when the query bounds its first field (an equality, `$in` or a
  range); otherwise MongoDB scans the collection.
- A partial index is used only when the query provably matches its filter, by MongoDB's own
  subset rules (`expression::isSubsetOf`): `{$eq: "x"}` implies `{$exists: true}` but never
  `{$type: "string"}`, which the query must then repeat.
- A sort comes from the index when, after dropping the fields the query fixes to one value,
  the sort keys follow the index keys in order and all in the index's direction or all
  reversed (equality, then sort, then range). An `$in` before the sort keys is exploded into
  one scan per value and merged, up to 200 scans (`internalQueryMaxScansToExplode`).
- Otherwise the documents are sorted in memory, which is only acceptable when a unique index
  bounds the result (a lookup by ids); over anything else it reads every matching document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import IndexModel

from graphql_api.database import GRIDFS_INDEXES, INDEXES, TEXT_INDEXES
from tests.query_log import Operation

MAX_SCANS_TO_EXPLODE = 200
RANGE_OPERATORS = {"$gt", "$gte", "$lt", "$lte"}


@dataclass(frozen=True, slots=True)
class Index:
    name: str
    keys: tuple[tuple[str, Any], ...]
    unique: bool = False
    partial: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, model: IndexModel) -> Index:
        document = model.document
        return cls(
            name=document["name"],
            keys=tuple(document["key"].items()),
            unique=bool(document.get("unique")),
            partial=document.get("partialFilterExpression"),
        )


ID_INDEX = Index("_id_", (("_id", 1),), unique=True)


def declared_indexes(collection: str) -> list[Index]:
    models = INDEXES.get(collection) or GRIDFS_INDEXES.get(collection) or []
    return [ID_INDEX, *(Index.of(model) for model in models)]


@dataclass(frozen=True, slots=True)
class Bound:
    """How a query constrains one field, for the planner."""

    kind: str  # "point", "points" ($in), "range" or "other" (no index bounds)
    points: int = 1


def conditions(query: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each field's conditions, with top-level `$and` flattened; `$or`, `$nor` and `$expr` are
    left out (MongoDB applies them after the index scan here)."""
    found: dict[str, list[Any]] = {}
    for key, value in query.items():
        if key == "$and":
            for part in value:
                for field, parts in conditions(part).items():
                    found.setdefault(field, []).extend(parts)
        elif not key.startswith("$"):
            found.setdefault(key, []).append(value)
    return found


def _is_operator_document(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(str(k).startswith("$") for k in value)


def bound(parts: list[Any]) -> Bound:
    best = Bound("other")
    for part in parts:
        if not _is_operator_document(part):
            return Bound("point")  # an implicit equality (on an array field: "contains")
        if "$eq" in part or ("$in" in part and len(part["$in"]) == 1):
            return Bound("point")
        if "$in" in part:
            best = Bound("points", len(part["$in"]))
        elif RANGE_OPERATORS & part.keys() and best.kind == "other":
            best = Bound("range")
    return best


def query_bounds(query: Mapping[str, Any]) -> dict[str, Bound]:
    return {field: bound(parts) for field, parts in conditions(query).items()}


# -- partial indexes: MongoDB's subset rules --------------------------------------------------


def _leaves(parts: list[Any]) -> list[tuple[str, Any]]:
    """A field's conditions as (operator, value) leaves; an implicit equality is `$eq`."""
    leaves = []
    for part in parts:
        if _is_operator_document(part):
            leaves.extend(part.items())
        else:
            leaves.append(("$eq", part))
    return leaves


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return True
    return type(a) is type(b) and isinstance(a, str | bytes)


def _leaf_implies(leaf: tuple[str, Any], required: tuple[str, Any]) -> bool:
    operator, value = leaf
    wanted, limit = required
    if leaf == required:
        return True  # an equivalent expression (the only way to imply a `$type`)
    if wanted == "$exists" and limit is True:
        if operator in {"$eq", *RANGE_OPERATORS}:
            return value is not None
        if operator == "$in":
            return None not in value
        return operator in {"$exists", "$type", "$regex", "$elemMatch", "$size", "$mod"}
    if operator == "$in":
        return bool(value) and all(_leaf_implies(("$eq", v), required) for v in value)
    if wanted in RANGE_OPERATORS | {"$eq"} and operator in RANGE_OPERATORS | {"$eq"}:
        if not _comparable(value, limit):
            return False
        if wanted == "$eq":
            return operator == "$eq" and value == limit
        below = operator in ("$lt", "$lte", "$eq")
        above = operator in ("$gt", "$gte", "$eq")
        if wanted == "$lt":
            return below and (value < limit or (value == limit and operator == "$lt"))
        if wanted == "$lte":
            return below and value <= limit
        if wanted == "$gt":
            return above and (value > limit or (value == limit and operator == "$gt"))
        return above and value >= limit  # $gte
    return False


def matches_partial_filter(query: Mapping[str, Any], partial: Mapping[str, Any]) -> bool:
    """Whether MongoDB can prove that every document the query matches is in the index."""
    found = conditions(query)
    for field, requirement in conditions(partial).items():
        leaves = _leaves(found.get(field, []))
        for required in _leaves(requirement):
            if not any(_leaf_implies(leaf, required) for leaf in leaves):
                return False
    return True


# -- sorts ------------------------------------------------------------------------------------


def provides_sort(
    index: Index, bounds: Mapping[str, Bound], sort: tuple[tuple[str, int], ...]
) -> bool:
    """Whether scanning `index` with these bounds yields documents already in `sort` order."""
    wanted = [(f, d) for f, d in sort if bounds.get(f, Bound("other")).kind != "point"]
    if not wanted:
        return True
    keys = [(f, d) for f, d in index.keys if bounds.get(f, Bound("other")).kind != "point"]
    scans = 1
    sort_fields = {f for f, _ in wanted}
    while keys and keys[0][0] not in sort_fields:
        leading = bounds.get(keys[0][0], Bound("other"))
        if leading.kind != "points":
            break
        scans *= leading.points
        keys.pop(0)
    if scans > MAX_SCANS_TO_EXPLODE or len(wanted) > len(keys):
        return False
    same = opposite = True
    for (field, direction), (key, key_direction) in zip(wanted, keys, strict=False):
        if field != key or not isinstance(key_direction, int):
            return False
        same &= direction == key_direction
        opposite &= direction == -key_direction
    return same or opposite


def _bounded_by_unique(index: Index, bounds: Mapping[str, Bound]) -> bool:
    return index.unique and all(
        bounds.get(field, Bound("other")).kind in ("point", "points") for field, _ in index.keys
    )


def plan_problem(operation: Operation) -> str | None:
    """Why MongoDB would scan the collection or sort in memory for this operation; None when a
    declared index serves it."""
    if operation.command == "insert":
        return None
    if "$text" in operation.filter:
        # MongoDB answers a `$text` query from the collection's text index alone, in relevance
        # order; without one it refuses the query instead of scanning.
        if operation.collection in TEXT_INDEXES:
            return None
        return "a $text query on a collection without a declared text index"
    bounds = query_bounds(operation.filter)
    usable = [
        index
        for index in declared_indexes(operation.collection)
        if index.partial is None or matches_partial_filter(operation.filter, index.partial)
    ]
    bounding = [i for i in usable if bounds.get(i.keys[0][0], Bound("other")).kind != "other"]
    if any(provides_sort(i, bounds, operation.sort) for i in bounding):
        return None
    if any(_bounded_by_unique(i, bounds) for i in usable):
        return None  # a lookup by unique keys: at most as many documents as values
    skipped = [
        i.name
        for i in declared_indexes(operation.collection)
        if i not in usable and bounds.get(i.keys[0][0], Bound("other")).kind != "other"
    ]
    if not bounding:
        why = "no declared index bounds it: a collection scan"
        if skipped:
            why += f" (the query does not match the partial filter of {', '.join(skipped)})"
        return why
    return (
        f"sort {dict(operation.sort)} comes from none of "
        f"{', '.join(i.name for i in bounding)}: MongoDB sorts every matching document in memory"
    )


def write_concern_problem(operation: Operation, expected: Mapping[str, Any]) -> str | None:
    if not operation.is_write:
        return None
    concern = dict(operation.write_concern or {})
    concern.pop("wtimeout", None)
    if concern != dict(expected):
        return f"write concern {concern or 'none (the server default)'}, expected {dict(expected)}"
    return None
