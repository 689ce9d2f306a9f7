"""Every query the product sends is served by a declared index, by MongoDB's rules.

The embedded server hides missing indexes (it plans with SQLite, ignores partial filters, and its
`explain` is a fixed answer), so the suite checks the plans itself: `tests/query_log.py` records
every query and write the product sends during the session, and `tests/query_plans.py` applies
MongoDB's planner rules to each against `graphql_api/database.py`'s indexes. The session check
runs after every other test (marker `session_check`); the scenario below makes it meaningful when
this file runs alone. The rules themselves are pinned by the small cases at the end.
"""

from __future__ import annotations

import pytest

from graphql_api.settings import Settings
from tests.conftest import Api
from tests.product_day import working_day
from tests.query_log import QUERY_LOG, Operation
from tests.query_plans import (
    matches_partial_filter,
    plan_problem,
    write_concern_problem,
)


async def test_the_product_queries_of_a_working_day(api: Api):
    await working_day(api)


@pytest.mark.session_check
def test_every_query_of_the_session_is_served_by_a_declared_index():
    operations = QUERY_LOG.snapshot()
    # Not vacuous: the product's main collections were queried and written.
    seen = {(o.command, o.collection) for o in operations}
    for wanted in [
        ("find", "conversations"),
        ("find", "messages"),
        ("find", "notifications"),
        ("find", "read_marks"),
        ("findAndModify", "conversations"),
        ("update", "notifications"),
    ]:
        assert wanted in seen, f"no {wanted} recorded: is the query log registered?"
    problems = sorted(
        f"{operation.describe()}\n    {problem}"
        for operation in operations
        if (problem := plan_problem(operation)) is not None
    )
    assert not problems, "queries MongoDB would not serve from an index:\n" + "\n".join(problems)


@pytest.mark.session_check
def test_every_write_of_the_session_asks_for_majority_and_the_journal():
    expected = Settings().write_concern_document()
    problems = sorted(
        f"{operation.describe()}\n    {problem}"
        for operation in QUERY_LOG.snapshot()
        if (problem := write_concern_problem(operation, expected)) is not None
    )
    assert not problems, "writes without the configured write concern:\n" + "\n".join(problems)


# -- the rules, on small cases ------------------------------------------------------------------


def op(collection: str, query: dict, sort: tuple = (), command: str = "find") -> Operation:
    return Operation(command, collection, query, sort, origin="case")


def test_an_equality_does_not_prove_a_type_partial_filter_but_does_prove_exists():
    by_type = {"key": {"$type": "string"}}
    assert not matches_partial_filter({"key": {"$eq": "k"}}, by_type)
    assert matches_partial_filter({"key": {"$eq": "k", "$type": "string"}}, by_type)
    assert matches_partial_filter({"key": {"$eq": "k"}}, {"key": {"$exists": True}})
    assert matches_partial_filter({"key": "k"}, {"key": {"$exists": True}})
    assert not matches_partial_filter({"key": None}, {"key": {"$exists": True}})
    assert not matches_partial_filter({"other": "k"}, {"key": {"$exists": True}})
    assert matches_partial_filter({"n": {"$gte": 8}}, {"n": {"$gt": 5}})
    assert not matches_partial_filter({"n": {"$gte": 5}}, {"n": {"$gt": 5}})


def test_a_sort_on_id_needs_an_index_that_ends_with_id():
    query = {"user_id": {"$eq": "u"}, "unread": {"$lt": 1}}
    problem = plan_problem(op("notifications", query, (("unread", -1), ("_id", -1))))
    assert problem is None
    inbox = {"firm_id": {"$eq": "f"}, "participant_ids": "u"}
    sort = (("last_activity_ms", -1), ("_id", -1))
    assert plan_problem(op("conversations", inbox, sort)) is None
    assert "sorts every matching document in memory" in (
        plan_problem(op("conversations", inbox, (("subject", 1),))) or ""
    )


def test_an_in_before_the_sort_keys_is_exploded_up_to_200_scans():
    def branch(companies: int) -> Operation:
        query = {
            "firm_id": {"$eq": "f"},
            "type": {"$in": ["COMPANY", "CONFIDENTIAL"]},
            "company_id": {"$in": [f"c{i}" for i in range(companies)]},
        }
        return op("conversations", query, (("last_activity_ms", -1), ("_id", -1)))

    assert plan_problem(branch(100)) is None
    assert "in memory" in (plan_problem(branch(101)) or "")


def test_a_range_before_the_sort_keys_leaves_the_sort_in_memory():
    query = {"conversation_id": {"$eq": "c"}, "seq": {"$gt": 3}}
    assert plan_problem(op("messages", query, (("seq", 1),))) is None
    assert plan_problem(op("messages", query, (("created_ms", 1),))) is not None


def test_a_query_no_index_bounds_is_a_collection_scan():
    assert "collection scan" in (plan_problem(op("messages", {"body_text": "x"})) or "")
    lookup = {"_id": {"$in": ["a", "b"]}}
    assert plan_problem(op("companies", lookup, (("name_lower", 1),))) is None
