"""A conversation's life after creation (SPEC §13): participants, subject, status, assignee, and
each viewer's archive and mute.

Every shared change is one conditional update of the conversation that also numbers its timeline
event (`Conversations.record_change`), then the event: readers see who changed what in the
history, subscribers get `ConversationChanged` and re-check access at once (a removed
participant's subscriptions end), other processes learn it from the event's insert. Archive and
mute are the viewer's own business: they change one array of the conversation and record nothing
in the shared timeline (docs/decisions.md).

Each change is checked by the policy first: `can_read` for everyone, `can_manage` (a
practitioner reader) for status, assignee and removing others. Bad input answers a coded error
and changes nothing.
"""

from __future__ import annotations

from pymongo import ReturnDocument

from graphql_api.compliance import audit
from graphql_api.conversations import validation
from graphql_api.conversations.models import (
    ARCHIVED_FIELDS,
    Conversation,
    ConversationEvent,
    ConversationStatus,
)
from graphql_api.conversations.service import Conversations, conversation_key
from graphql_api.database import Document
from graphql_api.directory.models import User
from graphql_api.errors import BadUserInput, Forbidden, NotFound
from graphql_api.ids import is_id, parse_id
from graphql_api.policy import (
    audience_of,
    can_manage,
    client_visibility_sources,
    may_remove_participant,
    read_grants,
    require_readable,
)
from graphql_api.search.index import refresh_read_grants, refresh_search_text


class Lifecycle:
    """Participants, subject, status, assignee, archive and mute of readable conversations."""

    def __init__(self, conversations: Conversations) -> None:
        self.conversations = conversations
        self.db = conversations.db

    # -- participants --------------------------------------------------------------------

    async def add_participants(
        self, viewer: User, conversation: Conversation, user_ids: list[str]
    ) -> Conversation:
        """Add users the viewer could designate for a new conversation of this type and
        company (SPEC §4), up to 100 participants; their read marks start now."""
        require_readable(viewer, conversation)
        if not user_ids:
            raise BadUserInput("name at least one user to add", field="userIds")
        if len(set(user_ids)) != len(user_ids):
            raise BadUserInput("userIds must not repeat a user", field="userIds")
        already = [u for u in user_ids if u in conversation.participant_ids]
        if already:
            raise BadUserInput(f"{already[0]!r} is already a participant", field="userIds")
        if len(conversation.participant_ids) + len(user_ids) > validation.MAX_PARTICIPANTS:
            raise BadUserInput(
                f"a conversation has at most {validation.MAX_PARTICIPANTS} participants",
                field="userIds",
            )
        others = [u for u in user_ids if u != viewer.id]  # a reader may join itself
        users = await self.conversations.eligible_users(
            viewer, conversation.type, conversation.company_id, others, field="userIds"
        )
        if viewer.id in user_ids:
            users.append(viewer)
        sources = client_visibility_sources(conversation.type, conversation.company_id, users)
        update: Document = {"$push": {"participant_ids": {"$each": user_ids}}}
        if sources:
            update["$push"]["client_visible_by"] = {"$each": sources}
            update["$set"] = {"client_visible": True}
        event = ConversationEvent(actor_id=viewer.id, added_user_ids=tuple(user_ids))
        # Unless one of them was added meanwhile (a duplicate then, as above).
        condition = {"participant_ids": {"$nin": user_ids}}
        updated = await self._change(viewer, conversation, update, event, condition)
        for user_id in user_ids:
            await self.conversations.start_read_mark(user_id, updated)
        return updated

    async def remove_participant(
        self, viewer: User, conversation: Conversation, user_id: str
    ) -> Conversation:
        """Remove a participant (a practitioner reader removes anyone; anyone may leave). The
        conversation stays client-visible while one of the clients who made it so remains; the
        removed user's notifications of it go, and its live subscriptions end (they re-check
        access on `ConversationChanged`)."""
        require_readable(viewer, conversation)
        if not may_remove_participant(viewer, conversation, user_id):
            raise Forbidden("clients may only remove themselves", field="userId")
        if not is_id(user_id) or user_id not in conversation.participant_ids:
            raise NotFound("participant not found", field="userId")
        if len(conversation.participant_ids) == 1:
            raise BadUserInput("the last participant cannot leave", field="userId")
        sources = await self._client_visibility_sources(conversation)
        remaining = [s for s in sources if s != user_id]
        update: Document = {
            "$pull": {"participant_ids": user_id},
            "$set": {"client_visible": bool(remaining), "client_visible_by": remaining},
        }
        event = ConversationEvent(actor_id=viewer.id, removed_user_ids=(user_id,))
        if conversation.assignee_id == user_id:  # the assignee must be able to read it
            update["$set"]["assignee_id"] = None
            event = ConversationEvent(
                actor_id=viewer.id,
                removed_user_ids=(user_id,),
                assignee_id=None,
                assignee_changed=True,
            )
        updated = await self._change(
            viewer, conversation, update, event, {"participant_ids": user_id}
        )
        # Notifications exist only for participants (`policy.readable_notifications_filter`).
        await self.db.notifications.delete_many(
            {"user_id": {"$eq": user_id}, "conversation_id": {"$eq": conversation.id}}
        )
        return updated

    async def _client_visibility_sources(self, conversation: Conversation) -> list[str]:
        """Who keeps the conversation client-visible; for one stored before that was recorded,
        its client participants (they were designated with it)."""
        if conversation.client_visible_by or not conversation.client_visible:
            return list(conversation.client_visible_by)
        users = await self.conversations.directory.users_by_ids(conversation.participant_ids)
        return [u for u in conversation.participant_ids if u in users and users[u].is_client]

    # -- subject, status, assignee -------------------------------------------------------

    async def rename(self, viewer: User, conversation: Conversation, subject: str) -> Conversation:
        """Any reader renames (SPEC §4's subject rules); the same subject changes nothing."""
        require_readable(viewer, conversation)
        subject = validation.clean_subject(subject)
        if subject == conversation.subject:
            return conversation
        event = ConversationEvent(
            actor_id=viewer.id, old_subject=conversation.subject, new_subject=subject
        )
        return await self._change(viewer, conversation, {"$set": {"subject": subject}}, event)

    async def set_status(
        self, viewer: User, conversation: Conversation, status: ConversationStatus
    ) -> Conversation:
        """A practitioner reader sets the status; the same status changes nothing."""
        self._require_manager(viewer, conversation, "set the status", "status")
        if status is conversation.status:
            return conversation
        event = ConversationEvent(actor_id=viewer.id, status=status)
        return await self._change(viewer, conversation, {"$set": {"status": status.value}}, event)

    async def assign(
        self, viewer: User, conversation: Conversation, assignee_id: str | None
    ) -> Conversation:
        """A practitioner reader sets (or clears, with None) the assignee: any practitioner of
        the firm, who becomes a participant."""
        self._require_manager(viewer, conversation, "assign conversations", "assigneeId")
        if assignee_id is not None:
            assignee_id = parse_id(assignee_id, "assignee")
        if assignee_id == conversation.assignee_id:
            return conversation
        update: Document = {"$set": {"assignee_id": assignee_id}}
        added: tuple[str, ...] = ()
        if assignee_id is not None:
            assignee = await self.conversations.directory.current_user(assignee_id)
            if (
                assignee is None
                or assignee.firm_id != viewer.firm_id
                or not assignee.is_practitioner
            ):
                raise NotFound(
                    "assignee not found among the firm's practitioners", field="assigneeId"
                )
            if assignee_id not in conversation.participant_ids:
                if len(conversation.participant_ids) >= validation.MAX_PARTICIPANTS:
                    raise BadUserInput(
                        f"a conversation has at most {validation.MAX_PARTICIPANTS} participants",
                        field="assigneeId",
                    )
                update["$push"] = {"participant_ids": assignee_id}
                added = (assignee_id,)
        event = ConversationEvent(
            actor_id=viewer.id, added_user_ids=added, assignee_id=assignee_id, assignee_changed=True
        )
        condition = {"participant_ids": {"$nin": list(added)}} if added else None
        updated = await self._change(viewer, conversation, update, event, condition)
        for user_id in added:
            await self.conversations.start_read_mark(user_id, updated)
        return updated

    # -- the viewer's own state ----------------------------------------------------------

    async def archive(
        self, viewer: User, conversation: Conversation, archived: bool
    ) -> Conversation:
        """Archive for the viewer: out of its default inbox until a message it may read
        arrives (numbering one clears its audience's array: `Conversations._take_seq`)."""
        require_readable(viewer, conversation)
        field = ARCHIVED_FIELDS[audience_of(viewer)]
        return await self._toggle(viewer, conversation, field, archived)

    async def mute(self, viewer: User, conversation: Conversation, muted: bool) -> Conversation:
        """Mute for the viewer: no notification of it (stored, live or email); unread counts
        still move."""
        require_readable(viewer, conversation)
        return await self._toggle(viewer, conversation, "muted_by", muted)

    async def _toggle(
        self, viewer: User, conversation: Conversation, field: str, on: bool
    ) -> Conversation:
        # A conditional `$push`, not `$addToSet`: the embedded server ignores the latter on a
        # missing array (conversations stored before these arrays existed).
        if on:
            query = {**conversation_key(conversation), field: {"$nin": [viewer.id]}}
            update: Document = {"$push": {field: viewer.id}}
        else:
            query = {**conversation_key(conversation), field: viewer.id}
            update = {"$pull": {field: viewer.id}}
        found = await self.db.conversations.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER
        )
        if found is None:  # already so (or gone: then the next read says NOT_FOUND)
            found = await self.db.conversations.find_one(conversation_key(conversation))
            if found is None:
                raise NotFound("conversation not found")
        return Conversation.from_doc(found)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _require_manager(viewer: User, conversation: Conversation, what: str, field: str) -> None:
        require_readable(viewer, conversation)
        if not can_manage(viewer, conversation):
            raise Forbidden(f"only practitioners may {what}", field=field)

    async def _refresh_search(self, before: Conversation, after: Conversation) -> None:
        """Keep the copies search holds on each message current (docs/search.md). Until this
        runs nothing leaks: search re-checks every result against the conversation."""
        if read_grants(before) != read_grants(after):
            await refresh_read_grants(self.db, after)
        if before.subject != after.subject:
            await refresh_search_text(self.db, after)

    async def _change(
        self,
        viewer: User,
        conversation: Conversation,
        update: Document,
        event: ConversationEvent,
        condition: Document | None = None,
    ) -> Conversation:
        entry = _audit_entry(viewer, conversation, event)
        audited = {**update, "$set": {**update.get("$set", {}), **audit.pending_fields(entry)}}
        updated = await self.conversations.record_change(
            viewer, conversation, audited, event, condition
        )
        if updated is not None:
            await audit.commit(self.db, "conversations", conversation_key(updated), entry)
            await self._refresh_search(conversation, updated)
            return updated
        if await self.db.conversations.find_one(conversation_key(conversation), {"_id": 1}):
            # The condition failed: someone changed the participants meanwhile.
            raise BadUserInput("the participants changed meanwhile: read them again and retry")
        raise NotFound("conversation not found")


def _audit_entry(viewer: User, conversation: Conversation, event: ConversationEvent) -> Document:
    """The audit record of a shared change (SPEC §17): what the timeline event says, by ids."""
    if event.assignee_changed:
        action = audit.AuditAction.ASSIGNEE_CHANGED
    elif event.added_user_ids:
        action = audit.AuditAction.PARTICIPANTS_ADDED
    elif event.removed_user_ids:
        action = audit.AuditAction.PARTICIPANT_REMOVED
    elif event.new_subject is not None:
        action = audit.AuditAction.SUBJECT_CHANGED
    else:
        action = audit.AuditAction.STATUS_CHANGED
    details = {
        key: value
        for key, value in event.to_doc().items()
        if key != "actor_id" and value not in (None, [], False)
    }
    if event.assignee_changed:
        details["assignee_id"] = event.assignee_id
    return audit.new_entry(
        viewer.firm_id,
        audit.Actor.of(viewer),
        action,
        conversation_id=conversation.id,
        company_id=conversation.company_id,
        details=details,
    )
