"""`SearchResult` (SPEC §16, §18) and its connection.

A result is only ever built from a hit of `graphql_api.search.service.Search`, whose query
applied the access policy and which checked each message against its conversation.
"""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.search.service import SearchHit
from graphql_api.search.snippet import snippet
from schema.conversation_types import Conversation, Message
from schema.pagination import Connection


@strawberry.type
class SearchResult:
    hit: strawberry.Private[SearchHit]

    @strawberry.field
    def message(self) -> Message:
        return Message(record=self.hit.message)

    @strawberry.field
    def conversation(self) -> Conversation:
        return Conversation(record=self.hit.conversation)

    @strawberry.field(
        description="An excerpt of the message's plain text (or of the attachment name or "
        "subject that matched): HTML-escaped, with `<mark>` around the matching words."
    )
    async def snippet(self, info: Info) -> str:
        message = self.hit.message
        filenames: list[str] = []
        if message.attachment_ids:
            found = await info.context.loaders.attachments.load_many(list(message.attachment_ids))
            filenames = [attachment.filename for attachment in found if attachment is not None]
        return snippet(self.hit.words, message.body_text, self.hit.conversation.subject, filenames)


SearchResultConnection = Connection[SearchResult]
