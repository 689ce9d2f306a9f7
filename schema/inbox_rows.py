"""What an inbox page shows of each conversation beside the conversation itself, read in bulk
for the whole page before its fields resolve (issue 16).

A page of 50 conversations shows 50 companies, participant lists, last messages (with their
authors) and unread counts. Loaded field by field through the operation's dataloaders, each is
an awaited resolver: a task, a dataloader look-up and a permission check awaited per
conversation and field, which was most of the server's work on an inbox page. Read here at once
(the same commands as the loaders send: one for the last messages and one for the read marks,
sent together; users and companies from the process's caches) and handed to each
`Conversation` as `Preloaded`, they resolve as plain values.

Only the fields the operation selects on the page's nodes are read (fragments included; a field
under `@skip`/`@include` counts as selected, which at worst reads something unused). The access
rules are the same as the fields': the conversations are the inbox's (the policy's filter), a
last message passes `can_read_message`, and the guarded fields keep their guard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from graphql_api.context import Info
from graphql_api.conversations import models
from graphql_api.directory.models import former_user
from graphql_api.policy import audience_of, can_read_message
from schema.conversation_types import NOT_READ, Message, Preloaded
from schema.directory_types import Company, User

PRELOADABLE = ("company", "participants", "createdBy", "lastMessage", "unreadCount")
"""The node fields read in bulk when selected."""


def node_fields(info: Info) -> set[str]:
    """The names of the fields selected on `edges { node { ... } }` of the connection the
    current field answers."""
    names: set[str] = set()
    # `selected_fields` holds the current field itself; the connection's fields are below it.
    connection = [s for field in info.selected_fields for s in _flatten(field.selections)]
    for edges in _fields_named(connection, "edges"):
        for node in _fields_named(edges.selections, "node"):
            names.update(field.name for field in _flatten(node.selections))
    return names


def _fields_named(selections: Iterable[Selection], name: str) -> list[SelectedField]:
    return [field for field in _flatten(selections) if field.name == name]


def _flatten(selections: Iterable[Selection]) -> list[SelectedField]:
    """The fields of a selection set, with those of its fragments."""
    fields: list[SelectedField] = []
    for selection in selections:
        if isinstance(selection, SelectedField):
            fields.append(selection)
        elif isinstance(selection, FragmentSpread | InlineFragment):
            fields += _flatten(selection.selections)
    return fields


async def preload(
    info: Info, conversations: Sequence[models.Conversation], wanted: set[str]
) -> list[Preloaded]:
    """For each of `conversations` (readable by the viewer), the `wanted` fields of
    `PRELOADABLE`, read for all of them at once."""
    wanted = wanted & set(PRELOADABLE)
    if not wanted or not conversations:
        return [Preloaded() for _ in conversations]
    services = info.context.services
    viewer = info.context.viewer
    audience = audience_of(viewer)

    refs = [
        (c.id, last_id)
        for c in conversations
        if (last_id := c.last_message_id_for(audience)) is not None
    ]
    # Both reads are sent together: two commands, as the loaders would send them.
    found_messages, counts = await asyncio.gather(
        services.conversations.messages_by_refs(refs)
        if "lastMessage" in wanted and refs
        else _nothing(),
        services.conversations.unread_counts(viewer, list(conversations))
        if "unreadCount" in wanted
        else _nothing(),
    )
    messages = {ref[0]: found_messages[ref] for ref in refs if ref in found_messages}

    user_ids: set[str] = {m.author_id for m in messages.values()}
    for c in conversations:
        if "participants" in wanted:
            user_ids.update(c.participant_ids)
        if "createdBy" in wanted:
            user_ids.add(c.created_by)
    company_ids = {c.company_id for c in conversations if c.company_id is not None}
    # From the process's caches: no command on a warm process.
    found_users, found_companies = await asyncio.gather(
        services.directory.current_users(user_ids),
        services.directory.current_companies(company_ids if "company" in wanted else ()),
    )
    users = {user_id: User(record=user) for user_id, user in found_users.items()}
    companies = {company_id: Company(record=c) for company_id, c in found_companies.items()}

    def user(user_id: str, firm_id: str) -> User:
        return users.get(user_id) or User(record=former_user(user_id, firm_id))

    def last_message(c: models.Conversation) -> Message | None:
        message = messages.get(c.id)
        if message is None or not can_read_message(viewer, c, message):
            return None
        return Message(record=message, author=user(message.author_id, message.firm_id))

    rows = []
    unread = dict(zip([c.id for c in conversations], counts, strict=True)) if counts else {}
    for c in conversations:
        rows.append(
            Preloaded(
                company=(
                    (companies.get(c.company_id) if c.company_id is not None else None)
                    if "company" in wanted
                    else NOT_READ
                ),
                participants=(
                    [user(u, c.firm_id) for u in c.participant_ids]
                    if "participants" in wanted
                    else NOT_READ
                ),
                created_by=user(c.created_by, c.firm_id) if "createdBy" in wanted else NOT_READ,
                last_message=last_message(c) if "lastMessage" in wanted else NOT_READ,
                unread_count=unread[c.id] if "unreadCount" in wanted else NOT_READ,
            )
        )
    return rows


async def _nothing() -> dict:
    return {}
