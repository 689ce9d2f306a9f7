"""The domain services of one running application, built once at start-up.

Resolvers reach them through the request context (`info.context.services`); nothing else holds
global state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from pymongo import AsyncMongoClient

from graphql_api.attachments.signing import UrlSigner
from graphql_api.attachments.store import AttachmentStore
from graphql_api.auth import TokenService
from graphql_api.conversations.editing import MessageEditor
from graphql_api.conversations.lifecycle import Lifecycle
from graphql_api.conversations.service import Conversations
from graphql_api.database import Db, Document
from graphql_api.directory.service import Directory
from graphql_api.email.preferences import Preferences
from graphql_api.email.signing import EmailSigner
from graphql_api.notifications.service import Notifications
from graphql_api.ratelimit import RateLimiter
from graphql_api.realtime.events import UserChanged
from graphql_api.realtime.hub import EventHub
from graphql_api.realtime.sources import Publisher
from graphql_api.search.service import Search
from graphql_api.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    client: AsyncMongoClient[Document]
    db: Db
    tokens: TokenService
    directory: Directory
    conversations: Conversations
    editing: MessageEditor
    attachments: AttachmentStore
    url_signer: UrlSigner
    notifications: Notifications
    hub: EventHub
    publisher: Publisher
    limiter: RateLimiter
    search: Search
    preferences: Preferences
    email_signer: EmailSigner
    lifecycle: Lifecycle

    @classmethod
    def build(cls, settings: Settings, client: AsyncMongoClient[Document], db: Db) -> Services:
        hub = EventHub()
        publisher = Publisher(hub)
        directory = Directory(
            db,
            on_user_changed=lambda uid: publisher.emit(UserChanged(uid)),
            cached_users=settings.user_cache_size,
        )
        attachments = AttachmentStore(db)
        tokens = TokenService(settings)
        notifications = Notifications(db)
        limiter = settings.rate_limiter()
        conversations = Conversations(db, directory, attachments, notifications, publisher, limiter)
        return cls(
            settings=settings,
            client=client,
            db=db,
            tokens=tokens,
            directory=directory,
            conversations=conversations,
            editing=MessageEditor(
                db,
                notifications,
                publisher,
                conversations.stop_counting,
                timedelta(seconds=settings.edit_window_seconds),
            ),
            attachments=attachments,
            url_signer=UrlSigner(tokens.url_signing_key),
            notifications=notifications,
            hub=hub,
            publisher=publisher,
            limiter=limiter,
            search=Search(db),
            preferences=Preferences(db),
            email_signer=EmailSigner.from_secret(tokens.url_signing_key),
            lifecycle=Lifecycle(conversations),
        )
