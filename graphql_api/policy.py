"""The one access policy (SPEC §3): who may read (and so reply to) a conversation, and who may be
designated as a participant.

Every path that reads a conversation comes here: the inbox list uses `readable_branches` (MongoDB
filters whose union is `readable_filter`), single reads and replies use `fetch_readable` (fetch,
check, and the same NOT_FOUND for missing and forbidden), subscriptions and downloads call
`can_read` per event and per request, the notification list and `markNotificationsRead` use
`readable_notifications_filter`. A property test proves the filters and `can_read` agree on
generated users and conversations.

The rule, per conversation type, for a viewer of the conversation's firm:
- participants may read, except that a client reads a company conversation (COMPANY or
  CONFIDENTIAL) only while it is still a client of that company;
- COMPANY: a practitioner with the company in its favorites; a client with the company in its
  favorites (and one of its companies) when the conversation is client-visible;
- CONFIDENTIAL: a practitioner with the company in its favorites;
- PRIVATE: participants only.
Favorites are read from the viewer as loaded for this request, so changes take effect at once.
"""

from __future__ import annotations

from collections.abc import Iterable

from graphql_api.conversations.models import COMPANY_KINDS, Conversation, ConversationKind
from graphql_api.database import Db, Document
from graphql_api.directory.models import User, UserKind
from graphql_api.errors import NotFound
from graphql_api.ids import parse_id


def can_read(viewer: User, conversation: Conversation) -> bool:
    """Whether `viewer` may read and reply to `conversation`."""
    if conversation.firm_id != viewer.firm_id:
        return False
    company = conversation.company_id
    if viewer.id in conversation.participant_ids:
        if viewer.is_client and conversation.type in COMPANY_KINDS:
            return company in viewer.company_ids
        return True
    if conversation.type is ConversationKind.PRIVATE or company not in viewer.favorite_company_ids:
        return False
    if viewer.is_practitioner:
        return True
    return (
        conversation.type is ConversationKind.COMPANY
        and conversation.client_visible
        and company in viewer.company_ids
    )


def is_client_visible(
    kind: ConversationKind, company_id: str | None, participants: Iterable[User]
) -> bool:
    """Whether a COMPANY conversation is client-visible: decided once, when its participants are
    designated, from whether one of them is a client with the company in its favorites."""
    return kind is ConversationKind.COMPANY and any(
        user.is_client and company_id in user.favorite_company_ids for user in participants
    )


def readable_branches(viewer: User) -> list[Document]:
    """MongoDB filters whose union selects exactly the conversations `can_read` allows.

    Each branch is one index-friendly query (see `INDEXES`, `inbox_participant` and
    `inbox_company`), so the inbox runs them apart and merges them in order: the embedded
    server evaluates a top-level `$or` document by document in Python. Scalar equalities are
    written as `$eq`: the embedded server then compares the column alone, where an implicit
    equality also searches inside arrays and so never uses an index (docs/embedded.md).
    `participant_ids` is an array and keeps the implicit "contains" equality.
    """
    firm = {"firm_id": {"$eq": viewer.firm_id}}
    company_kinds = [kind.value for kind in COMPANY_KINDS]
    if viewer.is_practitioner:
        return [
            {**firm, "participant_ids": viewer.id},
            {
                **firm,
                "type": {"$in": company_kinds},
                "company_id": {"$in": sorted(viewer.favorite_company_ids)},
            },
        ]
    return [
        {**firm, "participant_ids": viewer.id, "type": {"$eq": ConversationKind.PRIVATE.value}},
        {**firm, "participant_ids": viewer.id, "company_id": {"$in": sorted(viewer.company_ids)}},
        {
            **firm,
            "type": {"$eq": ConversationKind.COMPANY.value},
            "client_visible": {"$eq": True},
            "company_id": {"$in": sorted(viewer.favorite_company_ids & viewer.company_ids)},
        },
    ]


def readable_filter(viewer: User) -> Document:
    """A MongoDB filter selecting exactly the conversations `can_read` allows."""
    return {"$or": readable_branches(viewer)}


def readable_notifications_filter(viewer: User) -> Document:
    """A MongoDB filter on `notifications` selecting the viewer's notifications of conversations
    it may read, so that lists, cursors, `hasNextPage` and counts know nothing of the others.

    A notification is addressed to a participant of its conversation, and participants never
    change, so `can_read` comes down to its participant rule: a practitioner reads them all, a
    client those of private conversations and of the companies it is still a client of. Each
    notification keeps its conversation's company for this (`company_id`, None when private).
    If participants ever change, this filter must learn it first.
    """
    mine: Document = {"user_id": {"$eq": viewer.id}, "firm_id": {"$eq": viewer.firm_id}}
    if viewer.is_practitioner:
        return mine
    return {**mine, "company_id": {"$in": [None, *sorted(viewer.company_ids)]}}


async def fetch_readable(db: Db, viewer: User, conversation_id: object) -> Conversation:
    """The conversation if the viewer may read it; the same NOT_FOUND whether it is missing,
    malformed, another firm's or forbidden, so that an id never reveals that it exists."""
    oid = parse_id(conversation_id, "conversation")
    doc = await db.conversations.find_one({"_id": oid, "firm_id": viewer.firm_id})
    conversation = Conversation.from_doc(doc) if doc else None
    if conversation is None or not can_read(viewer, conversation):
        raise NotFound("conversation not found")
    return conversation


def eligible_participants_filter(
    viewer: User, kind: ConversationKind, company_id: str | None
) -> Document:
    """A MongoDB filter on `users` selecting whom `viewer` may designate (SPEC §4).

    Company conversations: practitioners of the firm and clients of the company (the caller has
    checked the viewer may pick that company). PRIVATE: anyone of the firm for a practitioner; for
    a client, practitioners and the clients sharing one of its companies. The viewer itself is
    never offered: the creator is always added.
    """
    practitioners: Document = {"kind": UserKind.PRACTITIONER.value}
    if kind in COMPANY_KINDS:
        others: Document = {"kind": UserKind.CLIENT.value, "company_ids": company_id}
    elif viewer.is_practitioner:
        others = {"kind": UserKind.CLIENT.value}
    else:
        others = {"kind": UserKind.CLIENT.value, "company_ids": {"$in": sorted(viewer.company_ids)}}
    return {"firm_id": viewer.firm_id, "_id": {"$nin": [viewer.id]}, "$or": [practitioners, others]}
