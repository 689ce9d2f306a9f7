"""The durable email outbox in MongoDB: one document per email to send (a user's window).

`email_outbox {_id, user_id, kind, from_ms, until_ms, due_ms, state, attempts, next_attempt_ms,
lease_until_ms, lease_owner, message_id, notification_ids, error, sent_ms, unsubscribed_ms}`.

- Planning is idempotent: a window's id is deterministic (`user:i:WINDOW` for IMMEDIATE,
  `user:d:DATE` for a DAILY digest) and written with `$setOnInsert`, so every process may plan
  the same window and one document results. `email_jobs` keeps how far planning went.
- Sending claims documents with a lease: one atomic update per document sets `lease_owner` and
  `lease_until_ms` only where the lease has expired, so two processes never hold the same
  email, and the claim of a process that died expires and the email is sent by another.
- The outcome is recorded under the lease (`state` sent, skipped or failed; or a retry time),
  right after the SMTP server answered. The `Message-ID` is deterministic per (user, window): in
  the one case the outcome could not be recorded (a crash between the server's "250" and the
  record) the email is sent again with the same `Message-ID`, which receiving systems treat as
  one message.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, UpdateOne

from graphql_api import clock
from graphql_api.database import Db, Document
from graphql_api.email import schedule
from graphql_api.email.preferences import EmailFrequency, NotificationSettings
from graphql_api.settings import Settings

log = logging.getLogger(__name__)

PENDING, SENT, SKIPPED, FAILED = "pending", "sent", "skipped", "failed"
IMMEDIATE_JOB, DAILY_JOB = "immediate", "daily"
MAX_WINDOWS_PER_PASS = 500
DAILY_LOOKBACK = timedelta(days=7)
DAILY_CHECK_MS = 15 * 60 * 1000  # digests fall on quarter hours in every time zone
KEEP_RECORDS = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class OutboxEmail:
    """One claimed email: whom it is for and which notifications it may list."""

    id: str
    user_id: str
    kind: EmailFrequency
    from_ms: int
    until_ms: int
    due_ms: int
    attempts: int

    @classmethod
    def from_doc(cls, doc: Document) -> OutboxEmail:
        return cls(
            id=doc["_id"],
            user_id=doc["user_id"],
            kind=EmailFrequency(doc["kind"]),
            from_ms=int(doc["from_ms"]),
            until_ms=int(doc["until_ms"]),
            due_ms=int(doc["due_ms"]),
            attempts=int(doc.get("attempts", 0)),
        )

    @property
    def key(self) -> str:
        """The window part of the id, for the Message-ID."""
        return self.id.split(":", 1)[1].replace(":", ".")


def _new_email(
    email_id: str, user_id: str, kind: EmailFrequency, from_ms: int, until_ms: int, due_ms: int
) -> UpdateOne:
    return UpdateOne(
        {"_id": email_id},
        {
            "$setOnInsert": {
                "user_id": user_id,
                "kind": kind.value,
                "from_ms": from_ms,
                "until_ms": until_ms,
                "due_ms": due_ms,
                "state": PENDING,
                "attempts": 0,
                "next_attempt_ms": due_ms,
                "lease_until_ms": 0,
                "lease_owner": None,
                "unsubscribed_ms": 0,
            }
        },
        upsert=True,
    )


class Outbox:
    def __init__(self, db: Db, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.delay_ms = max(int(settings.email_delay_seconds * 1000), 1)
        self.lease_ms = int(settings.email_lease_seconds * 1000)
        self.owner = uuid.uuid4().hex  # this process's claims

    # -- planning -------------------------------------------------------------------------

    async def plan(self, now_ms: int | None = None) -> int:
        """Create the outbox documents of every window that came due; answer how many windows
        were looked at. Safe to run in every process at once."""
        now_ms = now_ms if now_ms is not None else clock.now_ms()
        planned = await self._plan_immediate(now_ms)
        await self._plan_daily(now_ms)
        return planned

    async def _job_cursor(self, job: str, initial: int) -> int:
        # Two commands: the embedded server's find_one_and_update ignores `$setOnInsert` when
        # it inserts (docs/embedded.md).
        await self.db.email_jobs.update_one(
            {"_id": job}, {"$setOnInsert": {"through_ms": initial}}, upsert=True
        )
        doc = await self.db.email_jobs.find_one({"_id": job})
        return int(doc["through_ms"]) if doc else initial

    async def _advance(self, job: str, through_ms: int) -> None:
        await self.db.email_jobs.update_one({"_id": job}, {"$max": {"through_ms": through_ms}})

    async def _plan_immediate(self, now_ms: int) -> int:
        """Windows whose email is due: one document per user with unread notifications in it."""
        last = schedule.last_closed_window(now_ms, self.delay_ms)
        # On the very first run, start with the windows still to come: no email for what was
        # unread before emails existed.
        initial = schedule.window_range(last + 1, self.delay_ms)[0]
        through = await self._job_cursor(IMMEDIATE_JOB, initial)
        first = schedule.window_of(through, self.delay_ms)
        windows = list(range(first, last + 1))[:MAX_WINDOWS_PER_PASS]
        for window in windows:
            await self._plan_window(window)
            await self._advance(IMMEDIATE_JOB, schedule.window_range(window, self.delay_ms)[1])
        return len(windows)

    async def _plan_window(self, window: int) -> None:
        start, end = schedule.window_range(window, self.delay_ms)
        cursor = await self.db.notifications.aggregate(
            [
                {"$match": {"unread": {"$eq": 1}, "created_ms": {"$gte": start, "$lt": end}}},
                {"$group": {"_id": "$user_id"}},
            ]
        )
        groups = await cursor.to_list()
        user_ids = [g["_id"] for g in groups]
        if not user_ids:
            return
        settings = await self._settings_of(user_ids)
        due = schedule.window_due_ms(window, self.delay_ms)
        writes = [
            _new_email(f"{uid}:i:{window}", uid, EmailFrequency.IMMEDIATE, start, end, due)
            for uid in user_ids
            if uid in settings and settings[uid].email is EmailFrequency.IMMEDIATE
        ]
        if writes:
            await self.db.email_outbox.bulk_write(writes, ordered=False)

    async def _settings_of(self, user_ids: list[str]) -> dict[str, NotificationSettings]:
        docs = await self.db.users.find(
            {"_id": {"$in": user_ids}}, {"notification_settings": 1}
        ).to_list()
        return {doc["_id"]: NotificationSettings.from_user_doc(doc) for doc in docs}

    async def _plan_daily(self, now_ms: int) -> None:
        """The digest of every DAILY user whose hour came since the last look."""
        through = await self._job_cursor(DAILY_JOB, now_ms)
        if now_ms // DAILY_CHECK_MS == through // DAILY_CHECK_MS:
            return
        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        writes = []
        async for doc in self.db.users.find(
            {"notification_settings.email": {"$eq": EmailFrequency.DAILY.value}},
            {"notification_settings": 1},
        ):
            settings = NotificationSettings.from_user_doc(doc)
            due = schedule.latest_daily_due(now, settings.daily_hour, settings.zone)
            due_ms = clock.millis(due)
            if due_ms <= through:
                continue
            day = schedule.local_date_of(due, settings.zone).isoformat()
            since = clock.millis(due - DAILY_LOOKBACK)
            writes.append(
                _new_email(
                    f"{doc['_id']}:d:{day}", doc["_id"], EmailFrequency.DAILY, since, due_ms, due_ms
                )
            )
        if writes:
            await self.db.email_outbox.bulk_write(writes, ordered=False)
        await self._advance(DAILY_JOB, now_ms)

    # -- claiming -------------------------------------------------------------------------

    async def claim(self, limit: int, now_ms: int | None = None) -> list[OutboxEmail]:
        """Up to `limit` due emails, leased to this process until the lease expires."""
        now_ms = now_ms if now_ms is not None else clock.now_ms()
        candidates = (
            await self.db.email_outbox.find(
                {
                    "state": {"$eq": PENDING},
                    "next_attempt_ms": {"$lte": now_ms},
                    "lease_until_ms": {"$lte": now_ms},
                },
                {"_id": 1},
            )
            .sort("next_attempt_ms", ASCENDING)
            .limit(limit)
            .to_list()
        )
        if not candidates:
            return []
        lease = f"{self.owner}:{uuid.uuid4().hex}"
        # Each document is updated atomically, its condition checked again: a document another
        # process leased meanwhile is left alone.
        await self.db.email_outbox.update_many(
            {
                "_id": {"$in": [c["_id"] for c in candidates]},
                "state": {"$eq": PENDING},
                "lease_until_ms": {"$lte": now_ms},
            },
            {"$set": {"lease_owner": lease, "lease_until_ms": now_ms + self.lease_ms}},
        )
        docs = await self.db.email_outbox.find({"lease_owner": {"$eq": lease}}).to_list()
        return [LeasedEmail.wrap(doc, lease, now_ms + self.lease_ms) for doc in docs]

    async def release(self, emails: list[LeasedEmail]) -> None:
        """Give back claimed emails not attempted (their lease would run out mid-send)."""
        for email in emails:
            await self.db.email_outbox.update_one(
                {"_id": email.id, "lease_owner": email.lease},
                {"$set": {"lease_owner": None, "lease_until_ms": 0}},
            )

    # -- recording ------------------------------------------------------------------------

    async def _finish(self, email: LeasedEmail, update: Document) -> bool:
        result = await self.db.email_outbox.update_one(
            {"_id": email.id, "lease_owner": email.lease},
            {"$set": {**update, "lease_owner": None, "lease_until_ms": 0}},
        )
        return result.modified_count == 1

    async def record_sent(
        self, email: LeasedEmail, message_id: str, notification_ids: list[str]
    ) -> None:
        await self._finish(
            email,
            {
                "state": SENT,
                "sent_ms": clock.now_ms(),
                "message_id": message_id,
                "notification_ids": notification_ids,
                "attempts": email.attempts + 1,
            },
        )

    async def mark_emailed(self, notification_ids: list[str]) -> None:
        """Notifications listed in a sent email are not listed again (a later digest)."""
        if notification_ids:
            await self.db.notifications.update_many(
                {"_id": {"$in": notification_ids}}, {"$set": {"emailed_ms": clock.now_ms()}}
            )

    async def record_skipped(self, email: LeasedEmail, reason: str) -> None:
        await self._finish(email, {"state": SKIPPED, "error": reason})

    async def record_failure(self, email: LeasedEmail, error: str, *, temporary: bool) -> None:
        """A permanent failure is final; a temporary one is tried again after a backoff,
        until `email_max_attempts`."""
        attempts = email.attempts + 1
        if not temporary or attempts >= self.settings.email_max_attempts:
            await self._finish(email, {"state": FAILED, "error": error, "attempts": attempts})
            log.warning("email %s not sent (%s): %s", email.id, attempts, error)
            return
        delay = min(
            self.settings.email_retry_base_seconds * 2 ** (attempts - 1),
            self.settings.email_retry_max_seconds,
        )
        delay *= random.uniform(0.8, 1.2)  # spread retries of a whole batch
        await self._finish(
            email,
            {
                "error": error,
                "attempts": attempts,
                "next_attempt_ms": clock.now_ms() + int(delay * 1000),
            },
        )
        log.info("email %s: temporary failure (%s), retry in %.0f s", email.id, error, delay)

    async def purge_old(self, now_ms: int | None = None) -> int:
        """Forget finished emails after `KEEP_RECORDS` (planning never looks that far back)."""
        now_ms = now_ms if now_ms is not None else clock.now_ms()
        cutoff = now_ms - int(KEEP_RECORDS.total_seconds() * 1000)
        result = await self.db.email_outbox.delete_many(
            {"state": {"$in": [SENT, SKIPPED, FAILED]}, "due_ms": {"$lt": cutoff}}
        )
        return result.deleted_count

    async def depth(self) -> int:
        """Emails waiting to be sent (due or not)."""
        return await self.db.email_outbox.count_documents({"state": {"$eq": PENDING}})


@dataclass(frozen=True, slots=True)
class LeasedEmail(OutboxEmail):
    lease: str = ""
    lease_until_ms: int = 0

    @classmethod
    def wrap(cls, doc: Document, lease: str, lease_until_ms: int) -> LeasedEmail:
        base = OutboxEmail.from_doc(doc)
        return cls(
            id=base.id,
            user_id=base.user_id,
            kind=base.kind,
            from_ms=base.from_ms,
            until_ms=base.until_ms,
            due_ms=base.due_ms,
            attempts=base.attempts,
            lease=lease,
            lease_until_ms=lease_until_ms,
        )
