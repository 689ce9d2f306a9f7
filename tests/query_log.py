"""Every query and write the product sends during the test session, by shape.

A PyMongo `CommandListener` registered for every client of the test process (`conftest.py`)
keeps the find, update, delete, findAndModify, aggregate, count and distinct commands, and the
inserts, whose innermost frame of this repository is product code (`graphql_api/`, `schema/`,
`resolvers/`): the queries tests send themselves to look at the database are not the product's.
Commands are kept once per shape (values replaced by their type), with the first place that sent
it, so a whole suite run stays small. `tests/test_query_plans.py` and `tests/test_sharding.py`
check what was recorded against the declared indexes and shard keys.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import monitoring

REPO = Path(__file__).resolve().parent.parent
PRODUCT_DIRS = tuple(str(REPO / name) + "/" for name in ("graphql_api", "schema", "resolvers"))
TESTS_DIR = str(REPO / "tests") + "/"

QUERY_COMMANDS = {"find", "update", "delete", "findAndModify", "aggregate", "count", "distinct"}
WRITE_COMMANDS = {"insert", "update", "delete", "findAndModify"}


@dataclass(frozen=True, slots=True)
class Operation:
    """One statement of a command: a find, or one of the updates of an `update` command."""

    command: str
    collection: str
    filter: Mapping[str, Any]
    sort: tuple[tuple[str, int], ...] = ()
    multi: bool = False
    upsert: bool = False
    limit: int | None = None
    write_concern: Mapping[str, Any] | None = None
    document: Mapping[str, Any] | None = None
    """The inserted document (inserts only)."""
    origin: str = ""
    """file:line of the product code that sent it."""

    @property
    def is_write(self) -> bool:
        return self.command in WRITE_COMMANDS

    @property
    def single_document_write(self) -> bool:
        """update_one, replace_one, delete_one, find_one_and_*: MongoDB needs the shard key."""
        return self.command == "findAndModify" or (
            self.command in ("update", "delete") and not self.multi
        )

    def describe(self) -> str:
        sort = f" sort {dict(self.sort)}" if self.sort else ""
        kind = f"{self.command}{' multi' if self.multi else ''}{' upsert' if self.upsert else ''}"
        return f"{kind} {self.collection} {_shape_text(self.filter)}{sort} (from {self.origin})"


@dataclass
class QueryLog(monitoring.CommandListener):
    """Operations by shape, once the server accepted them (a command it refused, such as a
    query on a hostile value, never ran a plan); thread-safe (PyMongo may call listeners from
    its own threads)."""

    operations: dict[str, Operation] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    _started: dict[tuple[int, object], list[Operation]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name not in QUERY_COMMANDS and name != "insert":
            return
        origin = _product_origin()  # here: the sender's frames are on the stack now
        if origin is None:
            return
        operations = list(_operations(name, event.command, origin))
        with self._lock:
            self._started[(event.request_id, event.connection_id)] = operations

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        with self._lock:
            operations = self._started.pop((event.request_id, event.connection_id), [])
        for operation in operations:
            key = json.dumps(
                [
                    operation.command,
                    operation.collection,
                    _shape(operation.filter),
                    operation.sort,
                    operation.multi,
                    operation.upsert,
                    _shape(operation.document),
                    operation.write_concern,
                ],
                sort_keys=True,
                default=str,
            )
            with self._lock:
                self.operations.setdefault(key, operation)
                self.counts[key] = self.counts.get(key, 0) + 1

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        with self._lock:
            self._started.pop((event.request_id, event.connection_id), None)

    def snapshot(self) -> list[Operation]:
        with self._lock:
            return list(self.operations.values())


QUERY_LOG = QueryLog()
"""The session's log; `conftest.py` registers it with PyMongo before any client exists."""


def _product_origin() -> str | None:
    """file:line of the innermost frame of this repository when it is product code; None when
    the command comes from a test (or from nothing of ours)."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(PRODUCT_DIRS):
            return f"{Path(filename).relative_to(REPO)}:{frame.f_lineno}"
        if filename.startswith(TESTS_DIR):
            return None
        frame = frame.f_back
    return None


def _operations(name: str, command: Mapping[str, Any], origin: str) -> Iterator[Operation]:
    collection = str(command[name])
    concern = command.get("writeConcern")
    if name == "find":
        yield Operation(
            name,
            collection,
            command.get("filter") or {},
            _sort(command.get("sort")),
            limit=command.get("limit"),
            origin=origin,
        )
    elif name in ("count", "distinct"):
        yield Operation(name, collection, command.get("query") or {}, origin=origin)
    elif name == "aggregate":
        pipeline = list(command.get("pipeline") or [])
        if pipeline and "$changeStream" in pipeline[0]:
            return  # a change stream reads the oplog, not an index
        match: Mapping[str, Any] = {}
        sort: tuple[tuple[str, int], ...] = ()
        if pipeline and "$match" in pipeline[0]:
            match = pipeline.pop(0)["$match"]
        if pipeline and "$sort" in pipeline[0]:
            sort = _sort(pipeline[0]["$sort"])
        yield Operation(name, collection, match, sort, origin=origin)
    elif name == "update":
        for update in command.get("updates", ()):
            yield Operation(
                name,
                collection,
                update.get("q") or {},
                multi=bool(update.get("multi")),
                upsert=bool(update.get("upsert")),
                write_concern=concern,
                origin=origin,
            )
    elif name == "delete":
        for delete in command.get("deletes", ()):
            yield Operation(
                name,
                collection,
                delete.get("q") or {},
                multi=delete.get("limit", 0) == 0,
                write_concern=concern,
                origin=origin,
            )
    elif name == "findAndModify":
        yield Operation(
            name,
            collection,
            command.get("query") or {},
            _sort(command.get("sort")),
            upsert=bool(command.get("upsert")),
            write_concern=concern,
            origin=origin,
        )
    elif name == "insert":
        for document in command.get("documents", ()):
            yield Operation(
                name, collection, {}, write_concern=concern, document=document, origin=origin
            )


def _sort(sort: Mapping[str, Any] | None) -> tuple[tuple[str, int], ...]:
    """The sort's keys and directions; a `{"$meta": "textScore"}` key counts as 0 (no index)."""
    return tuple((str(k), v if isinstance(v, int) else 0) for k, v in (sort or {}).items())


def _shape(value: Any) -> Any:
    """The value with its leaves replaced by type names, lists by their first item's shape (and
    whether they are longer than MongoDB explodes for a sort)."""
    if isinstance(value, Mapping):
        return {str(k): _shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if not value:
            return []
        return [_shape(value[0])] + (["more than 200"] if len(value) > 200 else [])
    return type(value).__name__


def _shape_text(value: Any) -> str:
    return json.dumps(_shape(value), default=str)
