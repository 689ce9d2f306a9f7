"""Fixtures of the test modules in this folder: they share one app per module.

Starting the app is most of a test's cost, so each module here starts one app on one database
and every test gets its own copy of the standard directory (fresh firms): nothing is ever
visible across firms, so tests stay as isolated as with a database of their own. The `api` and
`db` fixtures here take the place of the ones in `tests/conftest.py` for this folder.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from graphql_api.database import Db
from tests.conversation_helpers import SharedApp, shared_app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared(
    mongo_server: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[SharedApp]:
    """One app for the module; every test gets fresh firms (see `SharedApp.fresh_api`)."""
    async with shared_app(mongo_server, tmp_path_factory.mktemp("shared")) as app:
        yield app


@pytest_asyncio.fixture(loop_scope="module")
async def api(shared: SharedApp) -> Any:
    return await shared.fresh_api()


@pytest.fixture
def db(shared: SharedApp) -> Db:
    return shared.db
