"""The per-request GraphQL context: the viewer (from the token only), services and dataloaders.

Dataloaders cache for one request; over a WebSocket the context lives as long as the connection,
so subscriptions build fresh loaders per operation (`Context.fresh_loaders`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, TypeVar

from pymongo.errors import PyMongoError
from strawberry.dataloader import DataLoader

from graphql_api.attachments.store import Attachment
from graphql_api.conversations.history import HistoryRequest
from graphql_api.conversations.models import Conversation, Message
from graphql_api.directory.models import Company, User
from graphql_api.errors import ApiError, InternalError, ServiceUnavailable, Unauthenticated
from graphql_api.ids import try_parse_id
from graphql_api.pagination import Page

log = logging.getLogger(__name__)
T = TypeVar("T")

# History pages one operation reads at once: a list of 100 conversations with their messages
# takes this many pooled connections, not 100 (issue 20).
HISTORY_READS_IN_FLIGHT = 4

if TYPE_CHECKING:
    from aiohttp import web
    from strawberry.types import Info as StrawberryInfo

    from graphql_api.services import Services


def _by_id(
    fetch: Callable[[list[str]], Awaitable[dict[str, T]]],
) -> Callable[[list[str]], Awaitable[list[T | None]]]:
    """A batch function answering, in key order, what `fetch` found (None for the rest)."""

    async def load(ids: list[str]) -> list[T | None]:
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
    def messages(self) -> DataLoader[str, Message | None]:
        return DataLoader(_by_id(self._services.conversations.messages_by_ids))

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
    active_subscriptions: int = 0
    """Subscriptions running on this WebSocket connection."""
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
        self._viewer = user

    @property
    def base_url(self) -> str:
        """The API's address as browsers reach it, for links such as `Attachment.url`."""
        if self.services.settings.public_url:
            return self.services.settings.public_url
        if self.request is not None:
            return str(self.request.url.origin())
        return f"http://{self.services.settings.host}:{self.services.settings.port}"

    def fresh_loaders(self) -> Loaders:
        self.loaders = Loaders.build(self.services, lambda: self.viewer)
        return self.loaders


async def authenticate(services: Services, authorization: str | None) -> User:
    """The user a bearer header value names; UNAUTHENTICATED for anything else."""
    return (await authenticate_until(services, authorization))[0]


async def authenticate_until(services: Services, authorization: str | None) -> tuple[User, int]:
    """The user a bearer header value names, and when its token expires (epoch seconds)."""
    subject, expires = services.tokens.header_claims(authorization)
    user_id = try_parse_id(subject)
    user = await services.directory.user_by_id(user_id) if user_id else None
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
        context._viewer = await authenticate(services, authorization)
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
