"""The executable schema: root types merged from each domain, with the service's extensions."""

from __future__ import annotations

import strawberry
from strawberry.extensions import DisableIntrospection, ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from schema.conversation_api import ConversationMutation, ConversationQuery
from schema.directory_api import DirectoryMutation, DirectoryQuery
from schema.email_api import EmailMutation, EmailQuery
from schema.extensions import MaskUnexpectedErrors, StripSuggestions
from schema.limits import limit_extensions
from schema.realtime_api import NotificationMutation, NotificationQuery, Subscription
from schema.shared_events import SharedEventExecutionContext

Query = merge_types("Query", (DirectoryQuery, ConversationQuery, NotificationQuery, EmailQuery))
Mutation = merge_types(
    "Mutation", (DirectoryMutation, ConversationMutation, NotificationMutation, EmailMutation)
)


class MessagerSchema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:  # type: ignore[no-untyped-def]
        # MaskUnexpectedErrors logs what needs logging, with the request id; expected failures
        # (wrong token, unknown id) are the client's business, not the server log's.
        return None


def build_schema(introspection: bool = True) -> MessagerSchema:
    """The executable schema; without introspection (production), "Did you mean" suggestions
    go too, since they reveal field names."""
    extensions: list = [ParserCache, ValidationCache, *limit_extensions(), MaskUnexpectedErrors]
    if not introspection:
        extensions[:0] = [DisableIntrospection, StripSuggestions]
    return MessagerSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        execution_context_class=SharedEventExecutionContext,
        config=StrawberryConfig(disable_field_suggestions=not introspection),
    )


schema = build_schema()


def export_sdl() -> str:
    return schema.as_str() + "\n"
