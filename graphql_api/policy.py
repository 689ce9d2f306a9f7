"""The one access policy: every rule of who may see, read, write or designate what.

Each rule comes in the forms its callers need, Zulip-style: a pure predicate on loaded records, a
fetch-check-raise helper that answers the same NOT_FOUND for missing and forbidden (an id never
reveals that it exists), and a bulk or MongoDB-filter form for lists and events. Nothing outside
this module decides access; `schema/permissions.py` names these rules on the schema's fields.

- Companies (SPEC §2): `can_see_company`, `visible_companies_filter`, `visible_company_ids_of`,
  `can_see_favorites_of`.
- Conversations (SPEC §3): `can_read`, `readable_branches` / `readable_filter`,
  `fetch_readable`, `require_readable`, `filter_readable`; for notifications of conversations,
  `readable_notifications_filter`; for routing live inbox events, `favorites_reach`.
- Messages (SPEC §13): `can_read_message`, `readable_messages_filter`, `audience_of` — the
  per-message rule beside the per-conversation one: internal notes are for practitioners only.
- Search (SPEC §16): `read_grants` / `viewer_read_grants`, the conversation rule restated as
  tokens (a message is readable by a viewer holding one of its conversation's tokens), and
  `searchable_messages_filter`, which a `$text` query on messages carries whole.
- Lifecycle (SPEC §13): `can_manage` (status, assignee, notes, removing others),
  `may_remove_participant`, `client_visibility_sources`.
- Edits and deletions (SPEC §14): `can_edit_message`, `can_delete_message`.
- Read receipts (SPEC §14): `can_see_receipt_of`, `can_see_receipt_on`, `visible_read_states`.
- Designation (SPEC §4): `eligible_participants_filter`.
- Attachments (SPEC §7): `can_download`.
- Compliance (SPEC §17): `can_administer`, `require_admin`, `fetch_administered_company`: the
  audit log and client-file exports are for the firm's admins only (FORBIDDEN for others), and
  another firm's company answers NOT_FOUND like a missing one.
A property test proves the filters and the predicates agree on generated users and records.

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

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from graphql_api.attachments.store import Attachment, AttachmentState
from graphql_api.conversations.models import (
    COMPANY_KINDS,
    Audience,
    Conversation,
    ConversationType,
    Message,
    MessageKind,
)
from graphql_api.database import Db, Document
from graphql_api.directory.models import Company, User, UserKind
from graphql_api.errors import Forbidden, NotFound
from graphql_api.ids import parse_id

# -- companies and people (SPEC §2) ------------------------------------------------------------


def can_see_company(viewer: User, company: Company) -> bool:
    """A practitioner sees every company of its firm; a client only its own (clients never
    discover the firm's other client files). The same rule gates which favorites it may pick."""
    if company.firm_id != viewer.firm_id:
        return False
    return viewer.is_practitioner or company.id in viewer.company_ids


def visible_companies_filter(viewer: User) -> Document:
    """`can_see_company` as a MongoDB filter on `companies`."""
    if viewer.is_practitioner:
        return {"firm_id": viewer.firm_id}
    return {"firm_id": viewer.firm_id, "_id": {"$in": sorted(viewer.company_ids)}}


def visible_company_ids_of(viewer: User, user: User) -> frozenset[str]:
    """The companies of `user` that `viewer` may learn it belongs to: a client sees another
    client's companies only where it belongs too."""
    if viewer.is_client and viewer.id != user.id:
        return user.company_ids & viewer.company_ids
    return user.company_ids


def can_see_favorites_of(viewer: User, user: User) -> bool:
    """Favorites are private to their owner."""
    return viewer.id == user.id


# -- conversations (SPEC §3) -------------------------------------------------------------------


def can_read(viewer: User, conversation: Conversation) -> bool:
    """Whether `viewer` may read and reply to `conversation`."""
    if conversation.firm_id != viewer.firm_id:
        return False
    company = conversation.company_id
    if viewer.id in conversation.participant_ids:
        if viewer.is_client and conversation.type in COMPANY_KINDS:
            return company in viewer.company_ids
        return True
    if conversation.type is ConversationType.PRIVATE or company not in viewer.favorite_company_ids:
        return False
    if viewer.is_practitioner:
        return True
    return (
        conversation.type is ConversationType.COMPANY
        and conversation.client_visible
        and company in viewer.company_ids
    )


def favorites_reach(conversation: Conversation) -> str | None:
    """The company whose favorites holders may read `conversation` without being participants
    (`can_read`'s second branch: practitioners, and clients when it is client-visible), or None
    when only its participants may. Live inbox events are routed by it (`realtime.events`)."""
    if conversation.type is ConversationType.PRIVATE:
        return None
    return conversation.company_id


def is_client_visible(
    kind: ConversationType, company_id: str | None, participants: Iterable[User]
) -> bool:
    """Whether a COMPANY conversation is client-visible: decided when its participants are
    designated, from whether one of them is a client with the company in its favorites."""
    return bool(client_visibility_sources(kind, company_id, participants))


def client_visibility_sources(
    kind: ConversationType, company_id: str | None, participants: Iterable[User]
) -> list[str]:
    """The designated participants that make a COMPANY conversation client-visible: clients with
    the company in their favorites at the moment they are designated. The conversation stays
    client-visible while one of them is still a participant (SPEC §13)."""
    if kind is not ConversationType.COMPANY:
        return []
    return [
        user.id
        for user in participants
        if user.is_client and company_id in user.favorite_company_ids
    ]


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
        {**firm, "participant_ids": viewer.id, "type": {"$eq": ConversationType.PRIVATE.value}},
        {**firm, "participant_ids": viewer.id, "company_id": {"$in": sorted(viewer.company_ids)}},
        {
            **firm,
            "type": {"$eq": ConversationType.COMPANY.value},
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

    A notification is addressed to a participant of its conversation, and only exists while its
    user is one: removing a participant deletes its notifications of that conversation in the
    same step (`conversations/lifecycle.py`), and a note never notifies a client. So `can_read`
    comes down to its participant rule: a practitioner reads them all, a client those of
    private conversations and of the companies it is still a client of. Each notification keeps
    its conversation's company for this (`company_id`, None when private).
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
    if doc is None:
        raise NotFound("conversation not found")
    conversation = Conversation.from_doc(doc)
    require_readable(viewer, conversation)
    return conversation


def require_readable(viewer: User, conversation: Conversation) -> None:
    """NOT_FOUND unless `viewer` may read `conversation`: the check a service makes on a
    conversation handed to it, whoever loaded it."""
    if not can_read(viewer, conversation):
        raise NotFound("conversation not found")


def filter_readable(viewer: User, conversations: Iterable[Conversation | None]) -> set[str]:
    """The ids of the conversations among `conversations` that `viewer` may read (bulk form for
    lists and events; None stands for a conversation that no longer exists)."""
    return {c.id for c in conversations if c is not None and can_read(viewer, c)}


# -- messages ----------------------------------------------------------------------------------


def audience_of(viewer: User) -> Audience:
    """Which activity the viewer sees: practitioners see notes, clients never do."""
    return Audience.STAFF if viewer.is_practitioner else Audience.CLIENT


def can_read_message(viewer: User, conversation: Conversation, message: Message) -> bool:
    """Whether `viewer` may read `message` of `conversation`: the per-message rule, applied on
    top of the conversation's. An internal note is for practitioners only; messages and
    timeline events are for every reader."""
    if message.conversation_id != conversation.id or not can_read(viewer, conversation):
        return False
    return may_read_kind(viewer, message.kind)


def may_read_kind(viewer: User, kind: MessageKind) -> bool:
    """The per-message rule on a reader of the conversation: notes for practitioners only (also
    who a new message of `kind` may notify)."""
    return kind is not MessageKind.NOTE or viewer.is_practitioner


def readable_messages_filter(viewer: User) -> Document:
    """The per-message rule as a MongoDB filter on `messages`, to add to every query on one
    readable conversation's messages (history, replay, search, exports). `$nin` rather than
    `$ne`: the same meaning on MongoDB, and messages stored before notes have no `kind`."""
    if viewer.is_practitioner:
        return {}
    return {"kind": {"$nin": [MessageKind.NOTE.value]}}


def can_manage(viewer: User, conversation: Conversation) -> bool:
    """Whether `viewer` may post notes, set the status and assignee and remove others: a
    practitioner who may read the conversation (SPEC §13)."""
    return viewer.is_practitioner and can_read(viewer, conversation)


def may_remove_participant(viewer: User, conversation: Conversation, user_id: str) -> bool:
    """A practitioner reader removes anyone; every reader may leave."""
    return can_read(viewer, conversation) and (viewer.id == user_id or viewer.is_practitioner)
    """The per-message rule as a MongoDB filter on `messages`, to add to a query on one
    readable conversation's history (nothing to add today). Search carries it inside a `$text`
    query (`searchable_messages_filter`): keep it flat conditions on fields, no `$or` or
    `$and`, which the embedded server would evaluate in Python over every message."""
    return {}


# -- search (SPEC §16) -------------------------------------------------------------------------
#
# A `$text` query cannot join: whatever decides access must be on the message documents, and on
# the embedded server it must be one flat condition (a `$or` beside `$text` is evaluated in
# Python over every document, and loses the relevance score). So the rule of `can_read` is
# restated as tokens: each conversation grants reading through a few tokens (stored on each of its
# messages as `read_grants`), each viewer holds a few (`viewer_read_grants`), and the viewer may
# read the conversation iff they share one. The property test proves this equals `can_read`.


def read_grants(conversation: Conversation) -> list[str]:
    """The tokens through which `conversation` may be read (the firm is checked apart):
    - `p:<user>`: a participant (any type; what a practitioner participant holds);
    - `pp:<user>` on PRIVATE, `pc:<user>:<company>` on COMPANY / CONFIDENTIAL: a participant, as
      a client holds it (a client reads a company conversation only while a client of it);
    - `f:<company>` on COMPANY / CONFIDENTIAL: a practitioner with the company in its favorites;
    - `v:<company>` on a client-visible COMPANY conversation: a client with the company in its
      favorites (and one of its companies).
    Participants and client-visibility can change: the messages' copy is then rewritten
    (`graphql_api.search.index.refresh_read_grants`)."""
    company = conversation.company_id
    grants = [f"p:{user}" for user in conversation.participant_ids]
    if conversation.type in COMPANY_KINDS:
        grants += [f"pc:{user}:{company}" for user in conversation.participant_ids]
        grants.append(f"f:{company}")
        if conversation.type is ConversationType.COMPANY and conversation.client_visible:
            grants.append(f"v:{company}")
    else:
        grants += [f"pp:{user}" for user in conversation.participant_ids]
    return sorted(set(grants))


def viewer_read_grants(viewer: User) -> list[str]:
    """The tokens `viewer` holds: one of them in `read_grants(c)` iff `can_read(viewer, c)`
    (same firm). Bounded by the viewer's companies and favorites, not by what it may read."""
    if viewer.is_practitioner:
        return [f"p:{viewer.id}", *(f"f:{c}" for c in sorted(viewer.favorite_company_ids))]
    return [
        f"pp:{viewer.id}",
        *(f"pc:{viewer.id}:{c}" for c in sorted(viewer.company_ids)),
        *(f"v:{c}" for c in sorted(viewer.favorite_company_ids & viewer.company_ids)),
    ]


def searchable_messages_filter(viewer: User) -> Document:
    """The messages `viewer` may read, as one flat MongoDB filter on `messages` (the firm, the
    read grants and the per-message rule), for a `$text` query to carry whole."""
    allowed: Document = {
        "firm_id": {"$eq": viewer.firm_id},
        "read_grants": {"$in": viewer_read_grants(viewer)},
    }
    per_message = readable_messages_filter(viewer)
    if set(per_message) & set(allowed):
        return {"$and": [allowed, per_message]}
    return {**allowed, **per_message}


def can_edit_message(viewer: User, message: Message, window: timedelta, now: datetime) -> bool:
    """Only its author edits a message (messages and notes alike, never a timeline event),
    within `window` of sending; a deleted message is never edited again. The caller has
    checked `can_read_message`."""
    return (
        message.kind is not MessageKind.EVENT
        and message.author_id == viewer.id
        and not message.is_deleted
        and (now - message.created_at <= window)
    )


def can_delete_message(viewer: User, message: Message, window: timedelta, now: datetime) -> bool:
    """Its author within `window` of sending; any practitioner who may read it, at any time (a
    file sent to the wrong client must be withdrawn whoever sent it). The caller has checked
    `can_read_message`. A timeline event is the record of a change: nobody deletes it."""
    if message.kind is MessageKind.EVENT:
        return False
    if viewer.is_practitioner:
        return True
    return message.author_id == viewer.id and now - message.created_at <= window


# -- read receipts (SPEC §14) ------------------------------------------------------------------


def can_see_receipt_of(viewer: User, reader: User, conversation: Conversation) -> bool:
    """Whether `viewer` may learn how far `reader` has read `conversation`: only participants
    have receipts; a practitioner sees everyone's, a client the practitioners' and its own (a
    client never learns what another client of the company has read)."""
    if reader.id not in conversation.participant_ids:
        return False
    return viewer.is_practitioner or reader.is_practitioner or reader.id == viewer.id


def can_see_receipt_on(viewer: User, reader: User, message: Message) -> bool:
    """Receipts of a note are only ever a practitioner's (SPEC §13: clients never read notes)."""
    return message.kind is not MessageKind.NOTE or reader.is_practitioner


def visible_read_states(
    viewer: User, conversation: Conversation, readers: Sequence[User]
) -> list[User]:
    """The readers among `readers` whose receipts `viewer` may see, in order."""
    return [r for r in readers if can_see_receipt_of(viewer, r, conversation)]


# -- designation (SPEC §4) ---------------------------------------------------------------------


def eligible_participants_filter(
    viewer: User, kind: ConversationType, company_id: str | None
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


# -- attachments (SPEC §7) ---------------------------------------------------------------------


async def can_download(db: Db, viewer: User, attachment: Attachment) -> bool:
    """An attached file is readable with its message while the message lists it (not once the
    message is deleted); a pending upload only by its uploader; a file still uploading by
    nobody."""
    if attachment.firm_id != viewer.firm_id:
        return False
    if attachment.state is AttachmentState.PENDING:
        return attachment.uploader_id == viewer.id
    attached = (AttachmentState.CLAIMED, AttachmentState.ATTACHED)
    if attachment.state not in attached or attachment.conversation_id is None:
        return False
    try:
        conversation = await fetch_readable(db, viewer, attachment.conversation_id)
    except NotFound:
        return False
    doc = await db.messages.find_one(
        {"conversation_id": {"$eq": conversation.id}, "_id": {"$eq": attachment.message_id}}
    )
    if doc is None:
        return False
    message = Message.from_doc(doc)
    # A deleted message lists no attachment any more: its files are served to nobody (SPEC §14).
    return attachment.id in message.attachment_ids and can_read_message(
        viewer, conversation, message
    )


# -- compliance (SPEC §17) ---------------------------------------------------------------------


def can_administer(viewer: User) -> bool:
    """Whether `viewer` may read its firm's audit log and export its client files: an admin
    (a practitioner with `"admin": true` in the import)."""
    return viewer.is_practitioner and viewer.is_admin


def require_admin(viewer: User) -> None:
    """FORBIDDEN unless the viewer is an admin of its firm. Refused before any id is looked
    at, so a non-admin learns nothing about ids either."""
    if not can_administer(viewer):
        raise Forbidden("only an admin of the firm may do this")


async def fetch_administered_company(db: Db, viewer: User, company_id: object) -> Company:
    """A company of the admin's firm; NOT_FOUND for a missing, malformed or another firm's id
    (after FORBIDDEN for a non-admin)."""
    require_admin(viewer)
    oid = parse_id(company_id, "company")
    doc = await db.companies.find_one({"_id": oid, "firm_id": viewer.firm_id})
    if doc is None:
        raise NotFound("company not found")
    return Company.from_doc(doc)
