"""The domain services of one running application, built once at start-up.

Resolvers reach them through the request context (`info.context.services`); nothing else holds
global state.
"""

from __future__ import annotations

from dataclasses import dataclass

from pymongo import AsyncMongoClient

from graphql_api.auth import TokenService
from graphql_api.conversations.service import Conversations
from graphql_api.database import Db, Document
from graphql_api.directory.service import Directory
from graphql_api.settings import Settings


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    client: AsyncMongoClient[Document]
    db: Db
    tokens: TokenService
    directory: Directory
    conversations: Conversations

    @classmethod
    def build(cls, settings: Settings, client: AsyncMongoClient[Document], db: Db) -> Services:
        directory = Directory(db)
        return cls(
            settings=settings,
            client=client,
            db=db,
            tokens=TokenService(settings),
            directory=directory,
            conversations=Conversations(db, directory),
        )
