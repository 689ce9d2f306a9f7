"""The shard keys of `graphql_api/sharding.py` can be applied, and the product keeps to them.

MongoDB refuses to shard a collection with a unique index that does not start with the shard
key, enforces uniqueness per shard only, requires the full shard key in the filter of an upsert,
and sends a single-document write without it to every shard. The table of `docs/scaling.md` is
this data, printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from graphql_api.database import GRIDFS_INDEXES, INDEXES
from graphql_api.sharding import SHARD_KEYS, UNSHARDED, markdown_table, shard_commands
from tests.conftest import Api
from tests.product_day import working_day
from tests.query_log import QUERY_LOG, Operation
from tests.query_plans import Bound, query_bounds

SCALING = Path(__file__).resolve().parent.parent / "docs" / "scaling.md"


def test_every_unique_index_starts_with_its_collections_shard_key():
    wrong = []
    for collection, models in {**INDEXES, **GRIDFS_INDEXES}.items():
        key = SHARD_KEYS.get(collection)
        if key is None:
            continue
        for model in models:
            document = model.document
            fields = tuple(document["key"])
            if document.get("unique") and fields[: len(key.names)] != key.names:
                wrong.append(f"{collection}.{document['name']} {fields}, shard key {key.names}")
    assert not wrong, wrong


def test_every_collection_is_either_sharded_or_said_unsharded():
    collections = {*INDEXES, *GRIDFS_INDEXES}
    assert set(SHARD_KEYS) | set(UNSHARDED) == collections
    assert not set(SHARD_KEYS) & set(UNSHARDED)


def test_no_shard_key_sends_every_insert_to_the_last_chunk():
    # Ids are ObjectIds, which grow with time: a key that starts with a ranged id field would
    # put every new document on the last chunk of the range.
    ranged = [name for name, key in SHARD_KEYS.items() if key.fields[0][1] != "hashed"]
    assert not ranged


def test_the_scaling_notes_show_this_data():
    text = SCALING.read_text()
    assert markdown_table() in text
    assert shard_commands("messager") in text


def _missing_shard_key(operation: Operation) -> list[str]:
    key = SHARD_KEYS.get(operation.collection)
    if key is None:
        return []
    if operation.command == "insert":
        return [name for name in key.names if name not in (operation.document or {})]
    if not (operation.single_document_write or operation.upsert):
        return []
    bounds = query_bounds(operation.filter)
    return [name for name in key.names if bounds.get(name, Bound("other")).kind != "point"]


async def test_the_writes_of_a_working_day(api: Api):
    await working_day(api)


@pytest.mark.session_check
def test_every_single_document_write_of_the_session_names_its_shard_key():
    operations = QUERY_LOG.snapshot()
    assert any(o.single_document_write and o.collection in SHARD_KEYS for o in operations)
    problems = sorted(
        f"{operation.describe()}\n    without {', '.join(missing)}"
        for operation in operations
        if (missing := _missing_shard_key(operation))
    )
    assert not problems, "writes a sharded cluster cannot route:\n" + "\n".join(problems)
