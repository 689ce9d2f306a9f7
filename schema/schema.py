"""The executable schema: root types merged from each domain, with the service's extensions."""

from __future__ import annotations

import strawberry
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.tools import merge_types

from schema.conversation_api import ConversationMutation, ConversationQuery
from schema.directory_api import DirectoryMutation, DirectoryQuery
from schema.extensions import MaskUnexpectedErrors
from schema.realtime_api import NotificationMutation, NotificationQuery, Subscription

Query = merge_types("Query", (DirectoryQuery, ConversationQuery, NotificationQuery))
Mutation = merge_types("Mutation", (DirectoryMutation, ConversationMutation, NotificationMutation))


class MessagerSchema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:  # type: ignore[no-untyped-def]
        # MaskUnexpectedErrors logs what needs logging, with the request id; expected failures
        # (wrong token, unknown id) are the client's business, not the server log's.
        return None


schema = MessagerSchema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[ParserCache, ValidationCache, MaskUnexpectedErrors],
)


def export_sdl() -> str:
    return schema.as_str() + "\n"
