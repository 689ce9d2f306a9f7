"""Shared GraphQL documents, helpers, and one app per test module for the conversation tests.

Speed and isolation: starting the app is most of a test's cost, so each conversation test module
starts one app on one database (`shared_app`), and every test gets its own copy of the standard
directory (fresh firms, `SharedApp.fresh_api`). Nothing is ever visible across firms, so tests
stay as isolated as with a database of their own, and counts are taken per firm (`firm_filter`).

The standard directory (`tests/factories.py`): firm acme has companies bakery, garage and florist;
practitioners alice (favorite: bakery) and paul (none); clients bob (bakery; favorite bakery),
carla (bakery; none) and dan (garage, florist; favorite garage). Firm other has company rival,
practitioner olga (favorite rival) and client oscar (rival; favorite rival).
"""

from __future__ import annotations

import contextlib
import copy
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from bson import ObjectId

from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.database import Db, connect, database_of, ensure_schema
from graphql_api.directory.importer import import_directory
from graphql_api.settings import Settings
from tests.conftest import JWT_SECRET, Api, with_database
from tests.factories import STANDARD_DIRECTORY
from tests.user_writes import update_user


def tagged_directory(tag: str) -> dict[str, list[dict[str, Any]]]:
    """The standard directory with firm keys and emails made unique by `tag` (same user and
    company keys, names and memberships)."""
    directory = copy.deepcopy(STANDARD_DIRECTORY)
    for firm in directory["firms"]:
        firm["key"] = f"{firm['key']}-{tag}"
    for entry in [*directory["companies"], *directory["users"]]:
        entry["firm"] = f"{entry['firm']}-{tag}"
    for user in directory["users"]:
        local, domain = user["email"].split("@")
        user["email"] = f"{local}+{tag}@{domain}"
    return directory


@dataclass
class SharedApp:
    """One running app and a handle on its database, shared by the tests of a module."""

    http: TestClient
    db: Db
    tokens: TokenService

    async def fresh_api(self) -> Api:
        """An `Api` (as in conftest) on a fresh copy of the standard directory."""
        ids = await import_directory(self.db, tagged_directory(uuid.uuid4().hex[:12]))
        ids["firms"] = {key.rsplit("-", 1)[0]: value for key, value in ids["firms"].items()}
        return Api(http=self.http, tokens=self.tokens, ids=ids)


@contextlib.asynccontextmanager
async def shared_app(mongo_server: str, data_dir: Path) -> AsyncIterator[SharedApp]:
    name = f"shared_{uuid.uuid4().hex[:12]}"
    uri = with_database(mongo_server, name)
    settings = Settings(mongodb_uri=uri, data_dir=data_dir, jwt_secret=JWT_SECRET)
    client = connect(uri)
    db = database_of(client)
    assert not await ensure_schema(db)
    http = TestClient(TestServer(init_app(settings)))
    await http.start_server()
    try:
        yield SharedApp(http=http, db=db, tokens=TokenService(settings))
    finally:
        await http.close()
        # Dropping closes the embedded server's file and change-stream triggers (conftest).
        await client.drop_database(name)
        await client.close()


def firm_filter(api: Any, firm: str = "acme") -> dict[str, str]:
    """Selects the documents of one of this test's firms."""
    return {"firm_id": api.ids["firms"][firm]}


CONVERSATION_FIELDS = """
    id type subject clientVisible unreadCount
    company { id }
    participants { id }
    createdBy { id }
"""

CREATE = f"""
mutation($input: CreateConversationInput!) {{
  createConversation(input: $input) {{ {CONVERSATION_FIELDS} }}
}}
"""

SEND = """
mutation($input: SendMessageInput!) {
  sendMessage(input: $input) { id body bodyText author { id } conversation { id } }
}
"""

MARK_READ = """
mutation($id: ID!) { markConversationRead(conversationId: $id) { id unreadCount } }
"""

CONVERSATION = f"""
query($id: ID!) {{ conversation(id: $id) {{ {CONVERSATION_FIELDS} }} }}
"""

CONVERSATIONS = """
query($first: Int, $after: String, $type: ConversationType, $companyId: ID, $unread: Boolean) {
  conversations(first: $first, after: $after, type: $type, companyId: $companyId,
                unreadOnly: $unread) {
    edges { cursor node { id subject unreadCount } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""

ELIGIBLE = """
query($type: ConversationType!, $companyId: ID, $search: String) {
  eligibleParticipants(type: $type, companyId: $companyId, search: $search) { id name }
}
"""

ADD_FAVORITE = "mutation($id: ID!) { addFavoriteCompany(companyId: $id) { id isFavorite } }"
REMOVE_FAVORITE = "mutation($id: ID!) { removeFavoriteCompany(companyId: $id) { id isFavorite } }"

NOT_FOUND_CONVERSATION = ("NOT_FOUND", "conversation not found")


def user_id(api: Any, key: str) -> str:
    return api.ids["users"][key]


def company_id(api: Any, key: str) -> str:
    return api.ids["companies"][key]


def create_input(
    api: Any,
    kind: str,
    participants: list[str],
    *,
    company: str | None = None,
    subject: str = "Subject",
    body: str = "<p>Hello</p>",
    client_message_id: str | None = None,
    participant_ids: Sequence[str] = (),
) -> dict[str, Any]:
    """A CreateConversationInput; `participants` and `company` are keys of the directory,
    `participant_ids` raw ids added after them."""
    data: dict[str, Any] = {
        "type": kind,
        "participantIds": [user_id(api, p) for p in participants] + list(participant_ids),
        "subject": subject,
        "body": body,
    }
    if company is not None:
        data["companyId"] = company_id(api, company)
    if client_message_id is not None:
        data["clientMessageId"] = client_message_id
    return data


async def create(api: Any, as_: str, kind: str, participants: list[str], **kwargs: Any) -> dict:
    """Create a conversation through the API; answers its fields (CONVERSATION_FIELDS)."""
    data = await api.gql(
        CREATE, {"input": create_input(api, kind, participants, **kwargs)}, as_=as_
    )
    return data["createConversation"]


async def send(
    api: Any, as_: str, conversation_id: str, body: str = "<p>Reply</p>", key: str | None = None
) -> dict:
    message: dict[str, Any] = {"conversationId": conversation_id, "body": body}
    if key is not None:
        message["clientMessageId"] = key
    data = await api.gql(SEND, {"input": message}, as_=as_)
    return data["sendMessage"]


async def single_error(
    api: Any,
    query: str,
    variables: dict[str, Any] | None = None,
    as_: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[str, str]:
    """(code, message) of an answer that must be exactly one error and no data."""
    body = await api.raw(query, variables, as_=as_, headers=headers)
    assert body["data"] is None, body
    assert len(body["errors"]) == 1, body
    error = body["errors"][0]
    return error["extensions"]["code"], error["message"]


async def inbox_ids(api: Any, as_: str, **variables: Any) -> list[str]:
    data = await api.gql(CONVERSATIONS, {"first": 100, **variables}, as_=as_)
    return [edge["node"]["id"] for edge in data["conversations"]["edges"]]


async def inbox_subjects(api: Any, as_: str, **variables: Any) -> list[str]:
    data = await api.gql(CONVERSATIONS, {"first": 100, **variables}, as_=as_)
    return [edge["node"]["subject"] for edge in data["conversations"]["edges"]]


async def read_single(api: Any, as_: str, conversation_id: str) -> dict | None:
    data = await api.gql(CONVERSATION, {"id": conversation_id}, as_=as_)
    return data["conversation"]


async def reply_outcome(
    api: Any, as_: str, conversation_id: str, headers: dict[str, str] | None = None
) -> str | tuple[str, str]:
    """ "sent" when a reply goes through (checked to be the viewer's, in that conversation),
    else the (code, message) of the single error, which must come with no data."""
    body = await api.raw(
        SEND,
        {"input": {"conversationId": conversation_id, "body": "<p>Me too</p>"}},
        as_=as_,
        headers=headers,
    )
    if body.get("errors"):
        assert body["data"] is None, body
        assert len(body["errors"]) == 1, body
        error = body["errors"][0]
        return error["extensions"]["code"], error["message"]
    message = body["data"]["sendMessage"]
    assert message["conversation"]["id"] == conversation_id
    if as_ is not None:
        assert message["author"]["id"] == user_id(api, as_)
    return "sent"


async def access_paths(api: Any, as_: str, conversation_id: str) -> dict[str, object]:
    """What `as_` gets on each path to the conversation: the single read (its id or None),
    whether the inbox lists it, and the reply outcome ("sent" or the error)."""
    single = await read_single(api, as_, conversation_id)
    listed = conversation_id in await inbox_ids(api, as_)
    return {
        "single": single["id"] if single else None,
        "listed": listed,
        "reply": await reply_outcome(api, as_, conversation_id),
    }


def all_paths(conversation_id: str, readable: bool) -> dict[str, object]:
    """The answer of `access_paths` for a conversation that is (or is not) readable."""
    if readable:
        return {"single": conversation_id, "listed": True, "reply": "sent"}
    return {"single": None, "listed": False, "reply": NOT_FOUND_CONVERSATION}


async def set_favorites(db: Db, api: Any, user: str, companies: list[str]) -> None:
    """Replace a user's favorites directly in the database (keys of the directory), as another
    process would; returns once the app has been told (`tests/user_writes.py`)."""
    await update_user(
        db,
        api.http.app,
        user_id(api, user),
        {"$set": {"favorite_company_ids": [company_id(api, c) for c in companies]}},
    )


async def set_companies(db: Db, api: Any, user: str, companies: list[str]) -> None:
    """Replace the companies a client belongs to, directly in the database, as another process
    would; returns once the app has been told."""
    await update_user(
        db,
        api.http.app,
        user_id(api, user),
        {"$set": {"company_ids": [company_id(api, c) for c in companies]}},
    )


async def insert_user(
    db: Db,
    firm_id: str,
    key: str,
    kind: str = "PRACTITIONER",
    *,
    name: str | None = None,
    email: str | None = None,
    companies: Sequence[str] = (),
    favorites: Sequence[str] = (),
) -> str:
    """Insert a user document in the stored shape; answers its id."""
    uid = str(ObjectId())
    name = name or key.title()
    await db.users.insert_one(
        {
            "_id": uid,
            "firm_id": firm_id,
            "key": key,
            "kind": kind,
            "name": name,
            "name_lower": name.lower(),
            "email": email or f"{key}+{uuid.uuid4().hex[:12]}@extra.test",
            "company_ids": list(companies),
            "favorite_company_ids": list(favorites),
        }
    )
    return uid


def conversation_doc(
    *,
    firm_id: str,
    kind: str,
    company_id: str | None,
    participant_ids: list[str],
    subject: str = "Stored",
    client_visible: bool = False,
    last_activity_ms: int = 1_700_000_000_000,
    conversation_id: str | None = None,
) -> dict[str, Any]:
    """A conversation document in the shape `Conversations.create` stores."""
    return {
        "_id": conversation_id or str(ObjectId()),
        "firm_id": firm_id,
        "type": kind,
        "company_id": company_id,
        "subject": subject,
        "participant_ids": list(participant_ids),
        "created_by": participant_ids[0],
        "created_at": datetime.fromtimestamp(last_activity_ms / 1000, tz=UTC),
        "last_activity_ms": last_activity_ms,
        "last_message_id": None,
        "message_count": 0,
        "client_visible": client_visible,
    }


def headers_for(api: Any, uid: str) -> dict[str, str]:
    """Bearer headers for a user that is not in the standard directory."""
    return {"Authorization": f"Bearer {api.tokens.issue(uid, ttl_seconds=600)}"}
