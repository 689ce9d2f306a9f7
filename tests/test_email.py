"""Email notifications (SPEC §15), delivered to a real SMTP server on loopback (aiosmtpd).

The app runs with a delay of one window of DELAY seconds; an email goes when the window after
the notifications' own ends, listing those still unread. Waits have deadlines; what "no email"
means is read from the outbox: its planner went past the window and nothing is pending.
"""

from __future__ import annotations

import asyncio
import mailbox
import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pymongo import MongoClient

from graphql_api import clock
from graphql_api.app import init_app
from graphql_api.auth import TokenService
from graphql_api.database import connect, database_of
from graphql_api.directory.importer import ImportFileError, import_directory
from graphql_api.email import schedule
from graphql_api.email.outbox import SENT, Outbox
from graphql_api.email.transport import transport_description
from graphql_api.settings import Settings
from tests.conftest import JWT_SECRET, Api
from tests.conversation_helpers import create, send
from tests.factories import STANDARD_DIRECTORY
from tests.smtp_sink import html_part, smtp_sink, text_part

DELAY = 1.0
WAIT = 60.0

SETTINGS_QUERY = "{ notificationSettings { email dailyHour timeZone } }"
UPDATE_SETTINGS = """
mutation($email: EmailFrequency, $hour: Int, $zone: String) {
  updateNotificationSettings(email: $email, dailyHour: $hour, timeZone: $zone) {
    email dailyHour timeZone
  }
}
"""
MARK_ALL_READ = "mutation { markNotificationsRead }"


def email_settings(mongo_uri: str, data_dir: Any, smtp_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mongodb_uri": mongo_uri,
        "data_dir": data_dir,
        "jwt_secret": JWT_SECRET,
        "email_delay_seconds": DELAY,
        "email_poll_seconds": 0.1,
        "smtp_url": smtp_url,
        "mail_domain": "messager.test",
        "app_url": "https://app.messager.test/c/{conversationId}",
        "public_url": "https://api.messager.test",
        "email_retry_base_seconds": 0.2,
        "email_senders": 2,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def sink():
    async with smtp_sink() as running:
        yield running


@pytest.fixture
def settings(mongo_uri, tmp_path, sink) -> Settings:
    return email_settings(mongo_uri, tmp_path / "data", sink.url)


async def start_of_window() -> None:
    """Wait for a fresh delay window, so that what a test sends next lands in one window."""
    window_ms = int(DELAY * 1000)
    into_window = clock.now_ms() % window_ms
    if into_window > window_ms // 4:
        await asyncio.sleep((window_ms - into_window) / 1000)


async def settled(db: Any, user_id: str, after_ms: int) -> None:
    """Wait until the outbox planned past `after_ms` and holds nothing pending for the user."""
    async with asyncio.timeout(WAIT):
        while True:
            job = await db.email_jobs.find_one({"_id": "immediate"})
            pending = await db.email_outbox.count_documents(
                {"user_id": user_id, "state": "pending"}
            )
            if job and job["through_ms"] > after_ms and pending == 0:
                return
            await asyncio.sleep(0.05)


async def outbox_doc(db: Any, user_id: str, state: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        while True:
            doc = await db.email_outbox.find_one({"user_id": user_id, "state": state})
            if doc is not None:
                return doc
            await asyncio.sleep(0.05)


# -- the rule ---------------------------------------------------------------------------------


async def test_notifications_of_one_window_arrive_as_one_email_listing_each_conversation(
    api, db, sink
):
    await start_of_window()
    first = await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="Invoices")
    second = await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="Payroll")
    await send(api, "alice", first["id"], "<p>And the March one</p>")

    notifications = await db.notifications.find({"user_id": api.ids["users"]["bob"]}).to_list()
    windows = {n["created_ms"] // int(DELAY * 1000) for n in notifications}
    received = await sink.wait_for(len(windows))
    await settled(db, api.ids["users"]["bob"], max(n["created_ms"] for n in notifications))

    to_bob = sink.to("bob@bakery.test")
    assert len(to_bob) == len(windows) == len(sink.received) == len(received)
    text = "".join(text_part(m) for m in to_bob)
    for subject in ("Invoices", "Payroll"):
        assert subject in text
    assert "And the March one" in text and "Martin Bakery" in text and "Alice Roy" in text
    html = "".join(html_part(m) for m in to_bob)
    for conversation in (first, second):
        assert f"https://app.messager.test/c/{conversation['id']}" in text
        assert f'href="https://app.messager.test/c/{conversation["id"]}"' in html
    if len(windows) == 1:
        assert to_bob[0]["Subject"] == "3 new messages in 2 conversations"


async def test_an_email_goes_only_after_the_notification_was_unread_for_the_delay(api, db, sink):
    await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="Wait for it")
    notification = await db.notifications.find_one({"user_id": api.ids["users"]["bob"]})
    await sink.wait_for(1)
    sent = await outbox_doc(db, api.ids["users"]["bob"], SENT)
    unread_for_ms = sent["sent_ms"] - notification["created_ms"]
    assert unread_for_ms >= DELAY * 1000
    assert sink.received[0]["Subject"] == "New message in “Wait for it”"


async def test_nothing_is_sent_for_a_notification_read_meanwhile(api, db, sink):
    await create(api, "alice", "COMPANY", ["bob", "carla"], company="bakery", subject="Read it")
    assert (await api.gql(MARK_ALL_READ, as_="bob"))["markNotificationsRead"] == 1
    await sink.wait_for(1)  # carla's
    created = await db.notifications.find_one({"user_id": api.ids["users"]["carla"]})
    await settled(db, api.ids["users"]["bob"], created["created_ms"])
    assert sink.to("bob@bakery.test") == []
    assert len(sink.to("carla@bakery.test")) == 1


async def test_nothing_is_sent_to_a_user_whose_email_setting_is_off(api, db, sink):
    data = await api.gql(UPDATE_SETTINGS, {"email": "OFF"}, as_="bob")
    assert data["updateNotificationSettings"] == {
        "email": "OFF",
        "dailyHour": None,
        "timeZone": "UTC",
    }
    await create(api, "alice", "COMPANY", ["bob", "carla"], company="bakery", subject="Quiet")
    await sink.wait_for(1)
    created = await db.notifications.find_one({"user_id": api.ids["users"]["carla"]})
    await settled(db, api.ids["users"]["bob"], created["created_ms"])
    assert [str(m["To"]) for m in sink.received] == ["Carla Martin <carla@bakery.test>"]


async def test_a_deleted_message_is_not_emailed(api, db, sink):
    conversation = await create(api, "alice", "PRIVATE", ["paul"], subject="Oops")
    wrong = await send(api, "alice", conversation["id"], "<p>Wrong file</p>")
    delete = "mutation($m: ID!) { deleteMessage(messageId: $m) { deletedAt } }"
    assert (await api.gql(delete, {"m": wrong["id"]}, as_="alice"))["deleteMessage"]["deletedAt"]
    await sink.wait_for(1)
    created = await db.notifications.find_one({"message_id": wrong["id"]})
    await settled(db, api.ids["users"]["paul"], created["created_ms"])
    text = "".join(text_part(m) for m in sink.to("paul@acme.test"))
    assert "Hello" in text and "Wrong file" not in text


async def test_a_conversation_the_user_muted_is_not_emailed(api, db, sink):
    muted = await create(api, "alice", "PRIVATE", ["paul"], subject="Muted topic")
    mute = """mutation($c: ID!) { muteConversation(conversationId: $c, muted: true) { muted } }"""
    assert (await api.gql(mute, {"c": muted["id"]}, as_="paul"))["muteConversation"]["muted"]
    await send(api, "alice", muted["id"], "<p>While muted</p>")
    await create(api, "alice", "PRIVATE", ["paul"], subject="Other topic")
    await sink.wait_for(1)
    text = "".join(text_part(m) for m in sink.to("paul@acme.test"))
    assert "Other topic" in text and "Muted topic" not in text and "While muted" not in text


async def test_an_internal_note_is_emailed_to_practitioners_only(api, db, sink):
    conversation = await create(api, "bob", "COMPANY", ["alice", "paul"], company="bakery")
    await api.gql(MARK_ALL_READ, as_="alice")
    await api.gql(MARK_ALL_READ, as_="paul")
    note = {"conversationId": conversation["id"], "body": "<p>Client owes 3k</p>", "internal": True}
    send_note = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { kind } }"
    assert (await api.gql(send_note, {"i": note}, as_="alice"))["sendMessage"]["kind"] == "NOTE"
    sent_ms = clock.now_ms()
    await sink.wait_for(1)
    assert "Client owes 3k" in "".join(text_part(m) for m in sink.to("paul@acme.test"))
    await settled(db, api.ids["users"]["bob"], sent_ms)
    everything_bob_got = "".join(text_part(m) for m in sink.to("bob@bakery.test"))
    assert "Client owes 3k" not in everything_bob_got


async def test_a_participant_who_lost_access_is_not_told_what_it_may_no_longer_read(api, db, sink):
    await create(api, "alice", "COMPANY", ["bob", "carla"], company="bakery", subject="Left")
    # bob is no longer a client of the bakery: the policy refuses him the conversation.
    await db.users.update_one({"_id": api.ids["users"]["bob"]}, {"$set": {"company_ids": []}})
    await sink.wait_for(1)
    created = await db.notifications.find_one({"user_id": api.ids["users"]["bob"]})
    await settled(db, api.ids["users"]["bob"], created["created_ms"])
    assert sink.to("bob@bakery.test") == []


# -- content ----------------------------------------------------------------------------------


async def test_hostile_subject_and_body_are_escaped_in_the_html_part(api, sink):
    subject = '<script>alert("s")</script> & <img src=x onerror=alert(1)>'
    body = "<p>&lt;script&gt;alert('b')&lt;/script&gt; <b>bold</b> &amp; co</p>"
    await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject=subject, body=body)
    [message] = await sink.wait_for(1)
    html = html_part(message)
    assert "<script" not in html and "<img" not in html and "onerror=alert(1)>" not in html
    assert "&lt;script&gt;alert(&#34;s&#34;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&#39;b&#39;)&lt;/script&gt; bold &amp; co" in html
    assert "<script>alert('b')</script> bold & co" in text_part(message)
    assert "\n" not in message["Subject"] and 'alert("s")' in message["Subject"]
    assert not [p for p in message.walk() if p.is_attachment()]


async def test_emails_are_written_in_the_users_locale(api, db, sink):
    french = {**STANDARD_DIRECTORY, "users": [dict(STANDARD_DIRECTORY["users"][2], locale="fr")]}
    await import_directory(db, french)  # bob reads French now
    await create(api, "alice", "COMPANY", ["bob", "carla"], company="bakery", subject="Bilan")
    await sink.wait_for(2)
    [to_bob] = sink.to("bob@bakery.test")
    [to_carla] = sink.to("carla@bakery.test")
    assert to_bob["Subject"] == "Nouveau message dans « Bilan »"
    assert text_part(to_bob).startswith("Bonjour Bob Martin,")
    assert 'lang="fr"' in html_part(to_bob) and "Ouvrir la conversation" in html_part(to_bob)
    assert to_carla["Subject"] == "New message in “Bilan”"
    assert text_part(to_carla).startswith("Hello Carla Martin,")


async def test_headers_carry_a_deterministic_message_id_a_reply_address_and_one_click_unsubscribe(
    api, sink
):
    conversation = await create(api, "alice", "COMPANY", ["bob"], company="bakery")
    [message] = await sink.wait_for(1)
    bob = api.ids["users"]["bob"]
    assert str(message["Message-ID"]).startswith("<i.") and f".{bob}@messager.test>" in str(
        message["Message-ID"]
    )
    reply_to = str(message["Reply-To"])
    assert reply_to.startswith("reply+") and reply_to.endswith("@messager.test")
    assert len(reply_to.split("@")[0]) <= 64
    assert (
        str(message["List-Unsubscribe"])
        .strip()
        .startswith("<https://api.messager.test/email/unsubscribe?token=")
    )
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Auto-Submitted"] == "auto-generated"
    assert conversation["id"] in text_part(message)


# -- settings ---------------------------------------------------------------------------------


async def test_notification_settings_default_and_change_with_coded_errors(api):
    assert (await api.gql(SETTINGS_QUERY, as_="bob"))["notificationSettings"] == {
        "email": "IMMEDIATE",
        "dailyHour": None,
        "timeZone": "UTC",
    }
    changed = await api.gql(
        UPDATE_SETTINGS, {"email": "DAILY", "hour": 7, "zone": "Europe/Paris"}, as_="bob"
    )
    assert changed["updateNotificationSettings"] == {
        "email": "DAILY",
        "dailyHour": 7,
        "timeZone": "Europe/Paris",
    }
    for variables in ({"hour": 24}, {"hour": -1}, {"zone": "Mars/Olympus"}, {"zone": "../etc"}):
        body = await api.raw(UPDATE_SETTINGS, variables, as_="bob")
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
    assert (await api.gql(SETTINGS_QUERY, as_="bob"))["notificationSettings"]["dailyHour"] == 7
    assert (await api.gql(SETTINGS_QUERY, as_="carla"))["notificationSettings"]["email"] == (
        "IMMEDIATE"
    )
    body = await api.raw(SETTINGS_QUERY)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


# -- unsubscribe ------------------------------------------------------------------------------


async def _unsubscribe_url(api: Any, sink: Any) -> str:
    await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="Unsub")
    [message] = await sink.wait_for(1)
    url = str(message["List-Unsubscribe"]).strip().strip("<>")
    return url.removeprefix("https://api.messager.test")


async def _email_setting(api: Any) -> str:
    return (await api.gql(SETTINGS_QUERY, as_="bob"))["notificationSettings"]["email"]


async def test_one_click_unsubscribe_turns_email_off(api, sink):
    path = await _unsubscribe_url(api, sink)
    page = await api.http.get(path)  # a link scanner's GET changes nothing
    assert page.status == 200 and "<form" in await page.text()
    assert await _email_setting(api) == "IMMEDIATE"
    answer = await api.http.post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status == 200 and await answer.json() == {"unsubscribed": True}
    assert await _email_setting(api) == "OFF"


async def test_a_replayed_unsubscribe_link_changes_nothing(api, sink):
    path = await _unsubscribe_url(api, sink)
    assert (await api.http.post(path, data={"List-Unsubscribe": "One-Click"})).status == 200
    await api.gql(UPDATE_SETTINGS, {"email": "IMMEDIATE"}, as_="bob")  # bob changes his mind
    replay = await api.http.post(path, data={"List-Unsubscribe": "One-Click"})
    assert replay.status == 200
    assert await _email_setting(api) == "IMMEDIATE"


async def test_a_forged_unsubscribe_link_changes_nothing(api, sink):
    path = await _unsubscribe_url(api, sink)
    token = path.split("token=")[1]
    payload, tag = token.split(".")
    forged_tag = ("a" if tag[0] != "a" else "b") + tag[1:]
    for forged in (f"{payload}.{forged_tag}", payload, "", "x" * 500):
        answer = await api.http.post(
            f"/email/unsubscribe?token={forged}", data={"List-Unsubscribe": "One-Click"}
        )
        assert answer.status == 400
        assert (await answer.json())["error"]["code"] == "BAD_USER_INPUT"
    assert await _email_setting(api) == "IMMEDIATE"


# -- delivery ---------------------------------------------------------------------------------


async def test_a_temporary_smtp_failure_is_retried_and_the_email_arrives_once(api, db, sink):
    sink.data_replies = {"*": ["451 4.3.0 mailbox busy, try later", "421 4.4.2 closing"]}
    await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="Retry")
    [message] = await sink.wait_for(1)
    sent = await outbox_doc(db, api.ids["users"]["bob"], SENT)
    assert sink.refused == 2 and sent["attempts"] == 3
    assert sink.message_id_counts() == {str(message["Message-ID"]): 1}


async def test_a_connection_failure_is_retried_until_the_server_is_back(
    mongo_uri, tmp_path, aiohttp_client, db
):
    async with smtp_sink() as placeholder:
        port = placeholder.port  # a port nobody listens on once it closes
    settings = email_settings(mongo_uri, tmp_path / "data", f"smtp://127.0.0.1:{port}")
    http = await aiohttp_client(init_app(settings))
    ids = await import_directory(db, STANDARD_DIRECTORY)
    api = Api(http=http, tokens=TokenService(settings), ids=ids)
    await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="Later")
    bob = ids["users"]["bob"]
    async with asyncio.timeout(WAIT):
        while True:
            if await db.email_outbox.find_one({"user_id": bob, "attempts": {"$gte": 1}}):
                break
            await asyncio.sleep(0.05)
    async with smtp_sink(port) as sink:
        [message] = await sink.wait_for(1)
        doc = await outbox_doc(db, bob, SENT)
    assert message["Subject"] == "New message in “Later”"
    assert doc["attempts"] >= 2 and len(sink.received) == 1


async def test_a_permanent_smtp_failure_is_recorded_and_not_retried(api, db, sink):
    sink.data_replies = {"bob@bakery.test": ["550 5.1.1 no such mailbox"]}
    await create(api, "alice", "COMPANY", ["bob", "carla"], company="bakery", subject="Bounce")
    failed = await outbox_doc(db, api.ids["users"]["bob"], "failed")
    assert failed["attempts"] == 1 and failed["error"].startswith("550")
    # The other email of the window went; the failed one stays failed.
    received = await sink.wait_for(1)
    assert len(received) == 1 and sink.refused == 1
    await settled(db, api.ids["users"]["bob"], failed["until_ms"])
    assert (await db.email_outbox.find_one({"_id": failed["_id"]}))["state"] == "failed"


# -- exactly once -----------------------------------------------------------------------------


async def test_two_processes_claiming_the_same_outbox_never_hold_the_same_email(
    settings, mongo_uri
):
    """Two outboxes on two clients (as two processes) claim concurrently: every due email is
    claimed by exactly one of them."""
    clients = [connect(mongo_uri), connect(mongo_uri)]
    try:
        outboxes = [Outbox(database_of(c), settings) for c in clients]
        now = clock.now_ms()
        await database_of(clients[0]).email_outbox.insert_many(
            [
                {
                    "_id": f"u{i}:i:1",
                    "user_id": f"u{i}",
                    "kind": "IMMEDIATE",
                    "from_ms": 0,
                    "until_ms": 1,
                    "due_ms": now,
                    "state": "pending",
                    "attempts": 0,
                    "next_attempt_ms": now,
                    "lease_until_ms": 0,
                    "lease_owner": None,
                    "unsubscribed_ms": 0,
                }
                for i in range(60)
            ]
        )

        async def drain(outbox: Outbox) -> list[str]:
            claimed: list[str] = []
            while batch := await outbox.claim(7):
                claimed += [email.id for email in batch]
            return claimed

        first, second = await asyncio.gather(*(drain(o) for o in outboxes))
        assert sorted(first + second) == sorted(f"u{i}:i:1" for i in range(60))
        assert not set(first) & set(second)
    finally:
        for client in clients:
            await client.close()


def test_planning_twice_in_two_processes_writes_one_email_per_user_and_window(mongo_uri):
    """Planning is idempotent: the same window planned by two processes is one document."""
    client: MongoClient = MongoClient(mongo_uri)
    try:
        db = client.get_default_database("messager")
        now = int(time.time() * 1000)
        window = now // 1000 - 3
        db.notifications.insert_many(
            [
                {
                    "_id": f"m{i}:u{i % 3}",
                    "user_id": f"u{i % 3}",
                    "created_ms": window * 1000 + i,
                    "unread": 1,
                }
                for i in range(9)
            ]
        )
        db.users.insert_many([{"_id": f"u{i}"} for i in range(3)])
        db.email_jobs.insert_one({"_id": "immediate", "through_ms": window * 1000})
    finally:
        client.close()

    async def plan_twice() -> list[str]:
        clients = [connect(mongo_uri), connect(mongo_uri)]
        try:
            settings = Settings(mongodb_uri=mongo_uri, email_delay_seconds=1)
            outboxes = [Outbox(database_of(c), settings) for c in clients]
            await asyncio.gather(*(o.plan(now) for o in outboxes))
            docs = await database_of(clients[0]).email_outbox.find().to_list()
            return sorted(d["_id"] for d in docs)
        finally:
            for c in clients:
                await c.close()

    assert asyncio.run(plan_twice()) == [f"u{i}:i:{window}" for i in range(3)]


async def test_a_daily_user_gets_one_digest_at_its_hour_in_its_time_zone(api, db, sink):
    paris = ZoneInfo("Europe/Paris")
    now = datetime.now(UTC)
    hour = now.astimezone(paris).hour  # today's digest in Paris is due at hour:00, just passed
    data = await api.gql(
        UPDATE_SETTINGS, {"email": "DAILY", "hour": hour, "zone": "Europe/Paris"}, as_="bob"
    )
    assert data["updateNotificationSettings"]["dailyHour"] == hour
    due = schedule.latest_daily_due(now, hour, paris)
    due_ms = clock.millis(due)
    await create(api, "alice", "COMPANY", ["bob", "carla"], company="bakery", subject="Daily")
    # The message came in before the digest hour (it is one of the day's), and the job last
    # looked just before that hour.
    bob = api.ids["users"]["bob"]
    await db.notifications.update_one({"user_id": bob}, {"$set": {"created_ms": due_ms - 60_000}})
    await db.email_jobs.update_one(
        {"_id": "daily"}, {"$set": {"through_ms": due_ms - 1}}, upsert=True
    )
    await sink.wait_for(2)
    [digest] = sink.to("bob@bakery.test")
    assert digest["Subject"] == "Your daily digest: 1 unread message(s)"
    assert f"<d.{due.astimezone(paris).date().isoformat()}.{bob}@" in str(digest["Message-ID"])
    assert "Daily" in text_part(digest)
    # IMMEDIATE emails are not sent to a DAILY user: carla's is the only other email.
    assert [str(m["To"]) for m in sink.received if m is not digest] == [
        "Carla Martin <carla@bakery.test>"
    ]


async def test_without_an_smtp_server_emails_are_written_to_a_maildir_in_the_data_directory(
    mongo_uri, tmp_path, aiohttp_client, db
):
    settings = email_settings(mongo_uri, tmp_path / "data", "")
    assert settings.smtp_url is None
    http = await aiohttp_client(init_app(settings))
    ids = await import_directory(db, STANDARD_DIRECTORY)
    api = Api(http=http, tokens=TokenService(settings), ids=ids)
    await create(api, "alice", "COMPANY", ["bob"], company="bakery", subject="Kept here")
    await outbox_doc(db, ids["users"]["bob"], SENT)
    maildir = mailbox.Maildir(tmp_path / "data" / "mail", create=False)
    [message] = list(maildir)
    assert message["To"] == "Bob Martin <bob@bakery.test>"
    assert transport_description(None, tmp_path / "data").startswith(
        f"written to the Maildir {(tmp_path / 'data' / 'mail').resolve()}"
    )


async def test_the_import_accepts_english_and_french_locales_only(db):
    users = [dict(STANDARD_DIRECTORY["users"][0], locale="de")]
    with pytest.raises(ImportFileError, match=r"users\[0\] \(key 'alice'\): locale"):
        await import_directory(db, {**STANDARD_DIRECTORY, "users": users})
    users = [dict(STANDARD_DIRECTORY["users"][0], locale="fr")]
    ids = await import_directory(db, {**STANDARD_DIRECTORY, "users": users})
    assert (await db.users.find_one({"_id": ids["users"]["alice"]}))["locale"] == "fr"
    # Imported again without a locale, the user keeps the one it has.
    ids = await import_directory(db, STANDARD_DIRECTORY)
    assert (await db.users.find_one({"_id": ids["users"]["alice"]}))["locale"] == "fr"
    assert (await db.users.find_one({"_id": ids["users"]["bob"]}))["locale"] == "en"


async def test_nothing_is_sent_for_a_conversation_opened_meanwhile(api, db, sink):
    conversation = await create(
        api, "alice", "COMPANY", ["bob", "carla"], company="bakery", subject="Opened"
    )
    mark = "mutation($id: ID!) { markConversationRead(conversationId: $id) { unreadCount } }"
    read = await api.gql(mark, {"id": conversation["id"]}, as_="bob")
    assert read["markConversationRead"]["unreadCount"] == 0
    await sink.wait_for(1)  # carla's
    created = await db.notifications.find_one({"user_id": api.ids["users"]["carla"]})
    await settled(db, api.ids["users"]["bob"], created["created_ms"])
    assert sink.to("bob@bakery.test") == []
    assert len(sink.to("carla@bakery.test")) == 1
