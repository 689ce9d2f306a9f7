"""The demo firm that `messager serve --demo` loads on first start."""

from __future__ import annotations

import json
from importlib import resources

from graphql_api.database import Db
from graphql_api.directory.importer import import_directory

DEMO_FIRM_KEY = "demo"


def demo_directory() -> dict[str, object]:
    return json.loads(resources.files("graphql_api.directory").joinpath("demo.json").read_text())


async def load_demo(db: Db) -> list[tuple[str, str, str]]:
    """Import the demo firm unless it exists; answer (email, kind, user id) per demo user."""
    data = demo_directory()
    firm = await db.firms.find_one({"key": DEMO_FIRM_KEY})
    if firm is None:
        await import_directory(db, data)
        firm = await db.firms.find_one({"key": DEMO_FIRM_KEY})
    assert firm is not None
    users = await db.users.find({"firm_id": firm["_id"]}).sort("key", 1).to_list()
    return [(u["email"], u["kind"], str(u["_id"])) for u in users]
