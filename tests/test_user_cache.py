"""The user cache (`graphql_api/directory/user_cache.py`) on the real database.

What it must never do is answer a user as it was before a change. It keeps users only while it
is told of every change (`serve`: the `users` change stream is open); otherwise, as on a
standalone MongoDB, every read goes to the database. A `CommandListener` on the cache's own
client counts the reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from graphql_api.database import Db, connect, database_of
from graphql_api.directory.service import Directory
from graphql_api.directory.user_cache import UserCache
from tests.command_counting import CountingListener


class Reads:
    """A directory on its own client, and the number of `find` commands it sent."""

    def __init__(self, directory: Directory, listener: CountingListener) -> None:
        self.directory = directory
        self.listener = listener

    @property
    def count(self) -> int:
        return self.listener.count


@pytest.fixture
async def reads(mongo_uri: str, ids: dict[str, dict[str, str]]) -> AsyncIterator[Reads]:
    listener = CountingListener(lambda event: event.command_name == "find")
    client = connect(mongo_uri, [listener])
    yield Reads(Directory(database_of(client), cached_users=100), listener)
    await client.close()


def cache_of(reads: Reads) -> UserCache:
    return reads.directory.cache


async def rename(db: Db, user_id: str, name: str) -> None:
    result = await db.users.update_one({"_id": user_id}, {"$set": {"name": name}})
    assert result.modified_count == 1


async def test_without_a_change_stream_every_read_goes_to_the_database(reads, db, ids):
    alice = ids["users"]["alice"]
    first = await reads.directory.current_user(alice)
    await rename(db, alice, "Alice Elsewhere")  # as another process, which nobody reports
    second = await reads.directory.current_user(alice)
    assert (first.name, second.name, reads.count) == ("Alice Roy", "Alice Elsewhere", 2)
    assert len(cache_of(reads)) == 0


async def test_a_serving_cache_reads_a_user_once_until_it_is_evicted(reads, db, ids):
    alice = ids["users"]["alice"]
    cache_of(reads).serve()
    names = [(await reads.directory.current_user(alice)).name for _ in range(3)]
    assert (names, reads.count) == (["Alice Roy"] * 3, 1)
    await rename(db, alice, "Alice Changed")
    cache_of(reads).evict(alice)  # what the change stream does
    assert (await reads.directory.current_user(alice)).name == "Alice Changed"
    assert reads.count == 2


async def test_a_read_in_flight_when_its_user_is_evicted_is_not_kept(reads, ids):
    alice = ids["users"]["alice"]
    cache_of(reads).serve()
    in_flight = asyncio.ensure_future(reads.directory.current_user(alice))
    await asyncio.sleep(0)  # the read has started, and waits for the database
    cache_of(reads).evict(alice)  # a change reported meanwhile: the read may predate it
    assert (await in_flight).name == "Alice Roy"
    assert alice not in cache_of(reads)
    await reads.directory.current_user(alice)
    assert (alice in cache_of(reads), reads.count) == (True, 2)


async def test_concurrent_reads_of_one_user_share_one_command(reads, ids):
    cache_of(reads).serve()
    users = await asyncio.gather(
        *(reads.directory.current_user(ids["users"]["bob"]) for _ in range(20))
    )
    assert {user.name for user in users} == {"Bob Martin"}
    assert reads.count == 1


async def test_a_missing_user_is_never_kept(reads, ids):
    cache_of(reads).serve()
    unknown = "0123456789abcdef01234567"
    assert await reads.directory.current_user(unknown) is None
    assert await reads.directory.current_user(unknown) is None
    assert reads.count == 2


async def test_the_cache_keeps_at_most_its_size_least_recently_used_first(reads, ids):
    cache = cache_of(reads)
    cache.max_users = 2
    cache.serve()
    alice, bob, carla = (ids["users"][key] for key in ("alice", "bob", "carla"))
    for user in (alice, bob, alice, carla):  # bob is then the least recently used
        await reads.directory.current_user(user)
    assert (len(cache), alice in cache, bob in cache, carla in cache) == (2, True, False, True)


async def test_stopping_serving_forgets_every_user(reads, db, ids):
    alice = ids["users"]["alice"]
    cache_of(reads).serve()
    await reads.directory.current_user(alice)
    cache_of(reads).stop_serving()  # the change stream broke: changes may go unreported
    await rename(db, alice, "Alice Meanwhile")
    assert (await reads.directory.current_user(alice)).name == "Alice Meanwhile"
    assert len(cache_of(reads)) == 0


async def test_a_favorites_write_of_this_process_evicts_its_user_at_once(reads, ids):
    alice = ids["users"]["alice"]
    cache_of(reads).serve()
    viewer = await reads.directory.current_user(alice)
    bakery = ids["companies"]["bakery"]
    company = (await reads.directory.companies_by_ids([bakery]))[bakery]
    await reads.directory.remove_favorite(viewer, company)
    assert (await reads.directory.current_user(alice)).favorite_company_ids == frozenset()


async def test_many_users_cost_one_read_for_those_not_kept_and_none_once_kept(reads, db, ids):
    alice, bob, paul = (ids["users"][k] for k in ("alice", "bob", "paul"))
    unknown = "0123456789abcdef01234567"
    cache_of(reads).serve()
    await reads.directory.current_user(alice)  # kept: one read
    found = await reads.directory.current_users([bob, alice, unknown, paul, bob])
    assert (sorted(found), reads.count) == (sorted([alice, bob, paul]), 2)
    again = await reads.directory.current_users([paul, bob, alice])
    assert (again == {k: found[k] for k in (alice, bob, paul)}, reads.count) == (True, 2)
    await rename(db, bob, "Bob Changed")
    cache_of(reads).evict(bob)  # what the change stream does
    assert (await reads.directory.current_users([bob, alice]))[bob].name == "Bob Changed"
    assert reads.count == 3


async def test_many_users_read_while_one_is_evicted_do_not_keep_it(reads, db, ids):
    alice, bob = ids["users"]["alice"], ids["users"]["bob"]
    cache_of(reads).serve()
    in_flight = asyncio.ensure_future(reads.directory.current_users([alice, bob]))
    await asyncio.sleep(0)  # the read has started, and waits for the database
    cache_of(reads).evict(bob)  # a change reported meanwhile: the read may predate it
    assert (await in_flight)[bob].name == "Bob Martin"
    assert (alice in cache_of(reads), bob in cache_of(reads)) == (True, False)


async def test_many_users_without_a_change_stream_always_go_to_the_database(reads, db, ids):
    alice, bob = ids["users"]["alice"], ids["users"]["bob"]
    await reads.directory.current_users([alice, bob])
    await rename(db, bob, "Bob Elsewhere")  # as another process, which nobody reports
    second = await reads.directory.current_users([alice, bob])
    assert (second[bob].name, reads.count, len(cache_of(reads))) == ("Bob Elsewhere", 2, 0)
