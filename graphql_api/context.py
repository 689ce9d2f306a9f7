"""The per-request GraphQL context: the viewer (from the token only), services and dataloaders.

The viewer is read through the process's user cache (`directory/user_cache.py`): no database
command on a warm process. Dataloaders cache for one request.

Over a WebSocket the context lives as long as the connection, while the viewer's permissions may
change (favorites, companies) or the user may be deleted: every operation re-reads the viewer
(`refresh_viewer`, called by `schema.extensions.CurrentViewer`) and takes fresh loaders, and
subscriptions re-read it for every event (`current_viewer`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web
from pymongo.errors import PyMongoError
from strawberry.dataloader import DataLoader

from graphql_api.attachments.store import Attachment
from graphql_api.auth import HTTP_CREDENTIAL
from graphql_api.conversations.history import HistoryRequest
from graphql_api.conversations.models import Conversation, Message, MessageRef
from graphql_api.conversations.read_marks import ReadMark
from graphql_api.directory.models import Company, User
from graphql_api.errors import ApiError, InternalError, ServiceUnavailable, Unauthenticated
from graphql_api.ids import try_parse_id
from graphql_api.pagination import Page
from graphql_api.policy import can_read, can_read_message, can_see_company
from graphql_api.realtime.streams import SubscriptionSlots

log = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K")

# History pages one operation reads at once: a list of 100 conversations with their messages
# takes this many pooled connections, not 100 (issue 20).
HISTORY_READS_IN_FLIGHT = 4

if TYPE_CHECKING:
    from strawberry.types import Info as StrawberryInfo

    from graphql_api.services import Services


def _by_id(
    fetch: Callable[[list[K]], Awaitable[dict[K, T]]],
) -> Callable[[list[K]], Awaitable[list[T | None]]]:
    """A batch function answering, in key order, what `fetch` found (None for the rest)."""

    async def load(ids: list[K]) -> list[T | None]:
        found = await fetch(ids)
        return [found.get(i) for i in ids]

    return load


class Loaders:
    """Batch loaders of one operation; they answer None for ids that do not exist.

    Each loader is built on first use: a subscription takes fresh loaders for every event it
    delivers, and most events need one or two of them.
    """

    def __init__(self, services: Services, viewer: Callable[[], User]) -> None:
        self._services = services
        self._viewer = viewer

    @classmethod
    def build(cls, services: Services, viewer: Callable[[], User]) -> Loaders:
        return cls(services, viewer)

    @cached_property
    def users(self) -> DataLoader[str, User | None]:
        return DataLoader(_by_id(self._services.directory.users_by_ids))

    @cached_property
    def companies(self) -> DataLoader[str, Company | None]:
        return DataLoader(_by_id(self._services.directory.companies_by_ids))

    @cached_property
    def conversations(self) -> DataLoader[str, Conversation | None]:
        return DataLoader(_by_id(self._services.conversations.conversations_by_ids))

    @cached_property
    def messages(self) -> DataLoader[MessageRef, Message | None]:
        """By (conversation id, message id): the conversation routes the query on a sharded
        cluster."""
        return DataLoader(_by_id(self._services.conversations.messages_by_refs))

    @cached_property
    def attachments(self) -> DataLoader[str, Attachment | None]:
        return DataLoader(_by_id(self._services.attachments.by_ids))

    @cached_property
    def history_pages(self) -> DataLoader[HistoryRequest, Page[Message]]:
        """Pages of `Conversation.messages`, read together per dispatch with at most
        `HISTORY_READS_IN_FLIGHT` queries at once. Not cached: over a WebSocket the loaders
        live as long as the connection, and a history must not be answered from an earlier
        operation (a page asked for twice in one dispatch is still read once)."""
        conversations = self._services.conversations
        in_flight = asyncio.Semaphore(HISTORY_READS_IN_FLIGHT)

        async def load(requests: list[HistoryRequest]) -> list[Page[Message] | ApiError]:
            return await conversations.history_pages(requests, in_flight)

        return DataLoader(load, cache=False)

    @cached_property
    def messages_by_id(self) -> DataLoader[str, Message | None]:
        """By id alone, within the viewer's firm (what `editMessage` and `deleteMessage`
        name)."""
        conversations = self._services.conversations

        async def fetch(ids: list[str]) -> dict[str, Message]:
            return await conversations.messages_by_ids(self._viewer().firm_id, ids)

        return DataLoader(_by_id(fetch))

    @cached_property
    def read_marks(self) -> DataLoader[Conversation, dict[str, ReadMark]]:
        """The participants' read marks per conversation (receipts), one query for all the
        conversations of the operation."""
        conversations = self._services.conversations

        async def load(items: list[Conversation]) -> list[dict[str, ReadMark]]:
            found = await conversations.read_marks_of(items)
            return [found.get(c.id, {}) for c in items]

        return DataLoader(load, cache_key_fn=lambda c: c.id)

    @cached_property
    def last_readable(self) -> DataLoader[tuple[str, int], Message | None]:
        """(conversation id, seq) -> the newest message the viewer may read at or before it."""
        conversations = self._services.conversations

        async def load(keys: list[tuple[str, int]]) -> list[Message | None]:
            viewer = self._viewer()
            return list(
                await asyncio.gather(
                    *(conversations.last_readable_at(viewer, c, seq) for c, seq in keys)
                )
            )

        return DataLoader(load)

    @cached_property
    def unread_counts(self) -> DataLoader[Conversation, int]:
        """Unread counts of the viewer, one aggregate for all conversations of the operation."""
        conversations = self._services.conversations

        async def load(items: list[Conversation]) -> list[int]:
            return await conversations.unread_counts(self._viewer(), items)

        return DataLoader(load, cache_key_fn=lambda c: c.id)


@dataclass
class Context:
    services: Services
    request_id: str
    request: web.Request | None = None
    response: web.StreamResponse | None = None
    connection_params: dict[str, object] | None = None
    """The `connection_init` payload of a WebSocket (set by Strawberry)."""
    subscriptions: SubscriptionSlots = field(default_factory=SubscriptionSlots)
    """Subscriptions running on this WebSocket connection."""
    viewer_id: str | None = None
    """The id the token names, once it names an existing user."""
    _viewer: User | None = None
    _auth_error: ApiError | None = None
    loaders: Loaders = field(init=False)

    def __post_init__(self) -> None:
        self.loaders = Loaders.build(self.services, lambda: self.viewer)

    @property
    def viewer(self) -> User:
        """The authenticated user; UNAUTHENTICATED for a field that needs one without it."""
        if self._viewer is None:
            raise self._auth_error or Unauthenticated("authentication required")
        return self._viewer

    def replace_viewer(self, user: User) -> None:
        """After the viewer's own document changed (favorites), answer with the new state."""
        self.viewer_id = user.id
        self._viewer = user
        self._auth_error = None

    @property
    def on_socket(self) -> bool:
        """Whether this context is a WebSocket connection's (it outlives its operations)."""
        return isinstance(self.response, web.WebSocketResponse)

    async def current_viewer(self) -> User:
        """The viewer as stored now (through the user cache); UNAUTHENTICATED once its user is
        deleted. Database errors are raised."""
        if self.viewer_id is None:
            return self.viewer  # raises why there is none
        user = await self.services.directory.current_user(self.viewer_id)
        if user is None:
            error = Unauthenticated("the token's user no longer exists")
            self._viewer, self._auth_error = None, error
            raise error
        self.replace_viewer(user)
        return user

    async def refresh_viewer(self) -> None:
        """Re-read the viewer before an operation; a failure is answered by the fields that
        need the viewer (UNAUTHENTICATED, SERVICE_UNAVAILABLE), as on HTTP."""
        try:
            await self.current_viewer()
        except ApiError:
            pass  # kept in `_auth_error`
        except PyMongoError as exc:
            log.warning("request %s: cannot reload the viewer: %s", self.request_id, exc)
            self._viewer = None
            self._auth_error = ServiceUnavailable(
                "the database is not answering; try again shortly"
            )

    @property
    def base_url(self) -> str:
        """The API's address as browsers reach it, for links such as `Attachment.url`."""
        if self.services.settings.public_url:
            return self.services.settings.public_url
        if self.request is not None:
            return str(self.request.url.origin())
        return f"http://{self.services.settings.host}:{self.services.settings.port}"

    async def readable_conversation(self, conversation_id: object) -> Conversation | None:
        """The conversation with that id if the viewer may read it (`policy.can_read`), through
        the operation's loader: a guard and the resolver after it share one query."""
        viewer = self.viewer  # no database work for a request without a valid token
        oid = try_parse_id(conversation_id)
        found = await self.loaders.conversations.load(oid) if oid else None
        return found if found is not None and can_read(viewer, found) else None

    async def readable_message(self, message_id: object) -> tuple[Conversation, Message] | None:
        """The message with that id and its conversation if the viewer may read it
        (`policy.can_read_message`); loaded once per operation for the guard and the resolver."""
        viewer = self.viewer
        oid = try_parse_id(message_id)
        if oid is None:
            return None
        message = await self.loaders.messages_by_id.load(oid)
        if message is None:
            return None
        conversation = await self.loaders.conversations.load(message.conversation_id)
        if conversation is None or not can_read_message(viewer, conversation, message):
            return None
        return conversation, message

    async def visible_company(self, company_id: object) -> Company | None:
        """The company with that id if the viewer may see it (`policy.can_see_company`)."""
        viewer = self.viewer
        oid = try_parse_id(company_id)
        found = await self.loaders.companies.load(oid) if oid else None
        return found if found is not None and can_see_company(viewer, found) else None

    def fresh_loaders(self) -> Loaders:
        self.loaders = Loaders.build(self.services, lambda: self.viewer)
        return self.loaders


async def authenticate(services: Services, authorization: str | None) -> User:
    """The user a bearer header value names; UNAUTHENTICATED for anything else."""
    return (await authenticate_until(services, authorization))[0]


async def authenticate_until(
    services: Services, authorization: str | None, source: str = HTTP_CREDENTIAL
) -> tuple[User, int]:
    """The user a bearer header value names, and when its token expires (epoch seconds);
    `source` names where the value came from, for the error message."""
    subject, expires = services.tokens.header_claims(authorization, source)
    user_id = try_parse_id(subject)
    user = await services.directory.current_user(user_id) if user_id else None
    if user is None:
        raise Unauthenticated("the token's user no longer exists")
    return user, expires


async def build_context(
    services: Services,
    request_id: str,
    authorization: str | None,
    request: web.Request | None = None,
    response: web.StreamResponse | None = None,
) -> Context:
    context = Context(services=services, request_id=request_id, request=request, response=response)
    try:
        context.replace_viewer(await authenticate(services, authorization))
    except Unauthenticated as error:
        # Kept, not raised: introspection and GraphiQL's schema load need no token.
        context._auth_error = error
    except PyMongoError as exc:
        log.warning("request %s: cannot load the viewer: %s", request_id, exc)
        context._auth_error = ServiceUnavailable("the database is not answering; try again shortly")
    except Exception:
        log.exception("request %s: cannot load the viewer", request_id)
        context._auth_error = InternalError(request_id)
    return context


if TYPE_CHECKING:
    Info = StrawberryInfo[Context, None]
else:  # strawberry resolves annotations at runtime; keep Info importable without cycles
    from strawberry.types import Info as _Info

    Info = _Info
