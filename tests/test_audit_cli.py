"""`messager audit` prints the log as CSV or JSON Lines; `messager audit verify` checks every
firm's hash chain and names the first record changed, removed or inserted out of order."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from graphql_api.compliance import chain
from tests.cli_helpers import cli_env, messager
from tests.compliance_helpers import make_admins
from tests.conftest import Api
from tests.conversation_helpers import create


@pytest.fixture
async def three_records(api: Api, db) -> str:
    """Three records in acme's chain; answers acme's firm id."""
    await make_admins(db)
    for subject in ("one", "two", "three"):
        await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject=subject)
    return api.ids["firms"]["acme"]


async def run(tmp_path: Path, mongo_uri: str, *args: str):
    return await messager(*args, env=cli_env(tmp_path / "data", mongo_uri), cwd=tmp_path)


async def test_audit_prints_json_lines_and_csv_with_the_chain(three_records, tmp_path, mongo_uri):
    lines = (await run(tmp_path, mongo_uri, "audit", "--format", "jsonl")).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["seq"], r["action"]) for r in records] == [
        (1, "conversation.created"),
        (2, "conversation.created"),
        (3, "conversation.created"),
    ]
    assert records[1]["prev_hash"] == records[0]["hash"]
    table = (await run(tmp_path, mongo_uri, "audit", "--format", "csv")).stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    assert [row["hash"] for row in rows] == [r["hash"] for r in records]
    assert json.loads(rows[0]["details"])["type"] == "COMPANY"


async def test_audit_since_and_until_bound_the_records(three_records, tmp_path, mongo_uri):
    future = await run(tmp_path, mongo_uri, "audit", "--since", "2999-01-01")
    assert (future.returncode, future.stdout) == (0, "")
    past = await run(tmp_path, mongo_uri, "audit", "--until", "2000-01-01", "--format", "csv")
    assert past.stdout.splitlines() == [
        ",".join(
            [
                "id",
                "firm_id",
                "seq",
                "at",
                "actor_id",
                "action",
                "conversation_id",
                "company_id",
                "details",
                "address",
                "prev_hash",
                "hash",
            ]
        )
    ]
    bad = await run(tmp_path, mongo_uri, "audit", "--since", "yesterday")
    assert bad.returncode == 2 and "ISO 8601" in bad.stderr


async def test_verify_passes_on_an_intact_chain(three_records, tmp_path, mongo_uri):
    result = await run(tmp_path, mongo_uri, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert f"firm {three_records}: 3 records, chain intact" in result.stdout


async def test_verify_names_a_record_changed_behind_the_apis_back(
    three_records, db, tmp_path, mongo_uri
):
    second = await db.audit_log.find_one({"seq": 2})
    await db.audit_log.update_one({"_id": second["_id"]}, {"$set": {"address": "10.9.9.9"}})
    result = await run(tmp_path, mongo_uri, "audit", "verify")
    assert result.returncode == 1
    assert f"record 2 (id {second['_id']}): changed" in result.stdout


async def test_verify_names_a_record_removed(three_records, db, tmp_path, mongo_uri):
    await db.audit_log.delete_one({"seq": 2})
    result = await run(tmp_path, mongo_uri, "audit", "verify")
    assert result.returncode == 1
    assert "record 2: missing: removed from the log" in result.stdout


async def test_verify_names_the_last_record_removed(three_records, db, tmp_path, mongo_uri):
    await db.audit_log.delete_one({"seq": 3})
    result = await run(tmp_path, mongo_uri, "audit", "verify")
    assert result.returncode == 1
    assert "record 3: missing" in result.stdout


async def test_verify_names_a_record_inserted_out_of_order(three_records, db, tmp_path, mongo_uri):
    first = await db.audit_log.find_one({"seq": 1})
    forged = {**first, "_id": "f" * 24, "seq": 2, "details": {"forged": True}}
    forged["prev_hash"] = first["hash"]
    forged["hash"] = chain.content_hash(forged)  # a forger can hash, but not relink the rest
    await db.audit_log.delete_one({"seq": 2})
    await db.audit_log.insert_one(forged)
    result = await run(tmp_path, mongo_uri, "audit", "verify")
    assert result.returncode == 1
    assert "record 3 (id " in result.stdout and "does not link" in result.stdout
