"""Edits, deletions and read receipts cross processes (SPEC §14): two real `messager serve` on
one database; what is changed through serve A reaches `messageUpdated` and
`conversationUpdated` subscribers of serve B through B's change streams."""

from __future__ import annotations

import contextlib

import aiohttp

from graphql_api.embedded import free_port
from tests.cli_helpers import cli_env
from tests.multiprocess_helpers import (
    Subscriber,
    bakery_conversation,
    gql,
    import_live_directory,
    reply,
)
from tests.server_process import serving

SEND = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }"
EDIT = """mutation($id: ID!, $body: String!) { editMessage(messageId: $id, body: $body) { id } }"""
DELETE = "mutation($id: ID!) { deleteMessage(messageId: $id) { id } }"
MARK_READ = "mutation($id: ID!) { markConversationRead(conversationId: $id) { id } }"
MESSAGE_UPDATED = """
subscription($id: ID!) { messageUpdated(conversationId: $id) { id body deletedAt } }
"""
CONVERSATION_UPDATED = """
subscription($id: ID!) { conversationUpdated(conversationId: $id) {
  readStates { user { id } lastReadMessage { id } } } }
"""
WARM_UP_WAIT = 2.0


async def test_edits_deletions_and_receipts_made_through_one_serve_reach_another(
    tmp_path, mongo_uri
):
    env = cli_env(tmp_path / "data", mongo_uri)
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(serving(env=env, log_dir=tmp_path, name="a", port=free_port()))
        b = stack.enter_context(serving(env=env, log_dir=tmp_path, name="b", port=free_port()))
        ids, tokens = await import_live_directory(mongo_uri)
        await a.until_healthy()
        await b.until_healthy()
        async with aiohttp.ClientSession() as session:
            cid, _ = await bakery_conversation(session, a, ids, tokens["alice"], "bob")
            sent = await gql(session, a, tokens["alice"], SEND, reply(cid, "Draft"))
            message_id = sent["sendMessage"]["id"]
            bob_on_b = await Subscriber.connect(
                session, f"ws://127.0.0.1:{b.port}/graphql", tokens["bob"]
            )
            try:
                await bob_on_b.subscribe("updates", MESSAGE_UPDATED, {"id": cid})
                await bob_on_b.subscribe("conversation", CONVERSATION_UPDATED, {"id": cid})
                # No acknowledgement says a subscription is live: edit until one arrives.
                for attempt in range(10):
                    body = f"<p>Edit {attempt}</p>"
                    await gql(session, a, tokens["alice"], EDIT, {"id": message_id, "body": body})
                    edited = await bob_on_b.next("updates", within=WARM_UP_WAIT)
                    if edited is not None:
                        break
                else:
                    raise AssertionError("no messageUpdated reached b in 10 edits through a")
                while edited["messageUpdated"]["body"] != body:  # earlier edits, in order
                    edited = await bob_on_b.next("updates")
                    assert edited is not None

                await gql(session, a, tokens["alice"], DELETE, {"id": message_id})
                deleted = await bob_on_b.next("updates")
                assert deleted is not None
                assert deleted["messageUpdated"]["id"] == message_id
                assert deleted["messageUpdated"]["body"] == ""
                assert deleted["messageUpdated"]["deletedAt"] is not None

                # alice reads the conversation through a; her receipt changes on b.
                bobs = await gql(session, a, tokens["bob"], SEND, reply(cid, "Thanks"))
                await gql(session, a, tokens["alice"], MARK_READ, {"id": cid})
                alice_id = ids["users"]["alice"]
                while True:
                    update = await bob_on_b.next("conversation")
                    assert update is not None, "alice's receipt never reached b"
                    states = {
                        s["user"]["id"]: s["lastReadMessage"]
                        for s in update["conversationUpdated"]["readStates"]
                    }
                    if states[alice_id] == {"id": bobs["sendMessage"]["id"]}:
                        break
            finally:
                await bob_on_b.close()
