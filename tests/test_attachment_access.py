"""Who may download an attachment (SPEC §3 and §7): `GET /attachments/{id}` with a bearer token.

An attached file answers 200 exactly to the viewers who may read its conversation, and 404 to
everyone else, with the same body as an id that does not exist; a pending upload (never attached)
answers only its uploader.

Every matrix case: zed (a practitioner with no favorites, added to firm acme) uploads a file and
creates a conversation with it; carla (client of bakery, no favorites) is always a participant,
and for the client-visible COMPANY conversation bob (client of bakery, favorite bakery) is one too.
Viewers, none a participant unless said: zed (the creator), alice (practitioner, favorite
bakery), paul (practitioner, no favorites), carla (participant client), cleo (client of bakery,
favorite bakery, added), dan (client of garage and florist) and, from firm other, olga
(practitioner) and oscar (client). Dan, olga and oscar are given the strongest claim the data can
make (bakery among their favorites; for oscar also among his companies) to show that neither
favorites alone nor a stored company reaches across companies or firms.
"""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from tests.conftest import Api
from tests.conversation_helpers import (
    ADD_FAVORITE,
    REMOVE_FAVORITE,
    company_id,
    headers_for,
    insert_user,
    user_id,
)
from tests.user_writes import update_user

CREATE = """
mutation($input: CreateConversationInput!) {
  createConversation(input: $input) { id clientVisible lastMessage { attachments { id } } }
}
"""
VIEWERS = ("zed", "alice", "paul", "carla", "cleo", "dan", "olga", "oscar")
CONVERSATIONS = {
    "COMPANY-client-visible": ("COMPANY", ["carla", "bob"]),
    "COMPANY-not-client-visible": ("COMPANY", ["carla"]),
    "CONFIDENTIAL": ("CONFIDENTIAL", ["carla"]),
    "PRIVATE": ("PRIVATE", ["carla"]),
}
NOT_FOUND_BODY = {"error": {"code": "NOT_FOUND", "message": "attachment not found"}}


def may_read(case: str, viewer: str) -> bool:
    """SPEC §3 written out for these viewers, independently of graphql_api/policy.py."""
    kind = CONVERSATIONS[case][0]
    if viewer in ("olga", "oscar"):  # another firm
        return False
    if viewer in ("zed", "carla"):  # participants
        return True
    if kind == "PRIVATE":
        return False
    if viewer == "alice":  # practitioner with the company among its favorites
        return True
    if viewer == "cleo":  # client of the company with it among its favorites
        return case == "COMPANY-client-visible"
    return False  # paul: no favorite; dan: not a client of the company


class World:
    """The standard directory plus zed and cleo, with headers for every viewer."""

    def __init__(self, api: Api, extra: dict[str, str]) -> None:
        self.api = api
        self.extra = extra

    def headers(self, viewer: str) -> dict[str, str]:
        if viewer in self.extra:
            return headers_for(self.api, self.extra[viewer])
        return self.api.headers(viewer)

    def id_of(self, viewer: str) -> str:
        return self.extra.get(viewer) or user_id(self.api, viewer)

    async def upload(self, viewer: str, data: bytes, filename: str = "file.bin") -> str:
        boundary = "access-test-boundary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        response = await self.api.http.post(
            "/attachments",
            data=body,
            headers={
                **self.headers(viewer),
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        assert response.status == 201, await response.text()
        return str((await response.json())["id"])

    async def gql(self, viewer: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.api.http.post(
            "/graphql",
            json={"query": query, "variables": variables},
            headers=self.headers(viewer),
        )
        body = await response.json()
        assert response.status == 200 and not body.get("errors"), body
        return body["data"]

    async def download(self, viewer: str, attachment_id: str) -> tuple[int, Any, bytes]:
        """(status, JSON body or None, raw bytes) of a bearer-token download."""
        response = await self.api.http.get(
            f"/attachments/{attachment_id}", headers=self.headers(viewer)
        )
        raw = await response.read()
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, raw

    async def create_with_attachment(
        self, kind: str, participants: list[str], data: bytes, *, by: str = "zed"
    ) -> tuple[dict[str, Any], str]:
        attachment_id = await self.upload(by, data)
        company = {"companyId": company_id(self.api, "bakery")} if kind != "PRIVATE" else {}
        created = await self.gql(
            by,
            CREATE,
            {
                "input": {
                    "type": kind,
                    **company,
                    "participantIds": [self.id_of(p) for p in participants],
                    "subject": "Figures",
                    "body": "<p>See attached</p>",
                    "attachmentIds": [attachment_id],
                }
            },
        )
        conversation = created["createConversation"]
        assert conversation["lastMessage"]["attachments"] == [{"id": attachment_id}]
        return conversation, attachment_id


@pytest.fixture
async def world(api, db) -> World:
    acme = api.ids["firms"]["acme"]
    bakery = company_id(api, "bakery")
    extra = {
        "zed": await insert_user(db, acme, "zed"),
        "cleo": await insert_user(
            db, acme, "cleo", "CLIENT", companies=[bakery], favorites=[bakery]
        ),
    }
    # The strongest claims the data can make for viewers outside the company or the firm.
    app = api.http.app
    await update_user(db, app, user_id(api, "dan"), {"$push": {"favorite_company_ids": bakery}})
    await update_user(db, app, user_id(api, "olga"), {"$set": {"favorite_company_ids": [bakery]}})
    await update_user(
        db,
        app,
        user_id(api, "oscar"),
        {"$set": {"company_ids": [bakery], "favorite_company_ids": [bakery]}},
    )
    return World(api, extra)


@pytest.mark.parametrize("case", list(CONVERSATIONS))
async def test_attachment_downloads_exactly_for_viewers_who_may_read_its_conversation(world, case):
    kind, participants = CONVERSATIONS[case]
    data = f"attachment of a {case} conversation".encode()
    conversation, attachment_id = await world.create_with_attachment(kind, participants, data)
    assert conversation["clientVisible"] is (case == "COMPANY-client-visible")

    outcomes = {viewer: await world.download(viewer, attachment_id) for viewer in VIEWERS}

    assert {viewer: status for viewer, (status, _, _) in outcomes.items()} == {
        viewer: 200 if may_read(case, viewer) else 404 for viewer in VIEWERS
    }
    for viewer, (status, body, raw) in outcomes.items():
        if status == 200:
            assert raw == data, viewer
        else:
            unknown = await world.download(viewer, str(ObjectId()))
            assert (status, body) == (unknown[0], unknown[1]) == (404, NOT_FOUND_BODY), viewer


async def test_unknown_malformed_and_forbidden_ids_answer_the_same_404(world):
    _, private_attachment = await world.create_with_attachment("PRIVATE", ["carla"], b"secret")

    answers = [
        await world.download("paul", private_attachment),  # exists, paul may not read it
        await world.download("paul", str(ObjectId())),  # well formed, never existed
        await world.download("paul", "not-an-id"),
        await world.download("paul", "%24ne"),
    ]
    assert [(status, body) for status, body, _ in answers] == [(404, NOT_FOUND_BODY)] * 4


async def test_another_firms_attachment_answers_404(world):
    # olga (firm other) attaches a file in her own firm; nobody of acme can reach it.
    other_attachment = await world.upload("olga", b"rival figures")
    await world.gql(
        "olga",
        CREATE,
        {
            "input": {
                "type": "PRIVATE",
                "participantIds": [user_id(world.api, "oscar")],
                "subject": "Rival",
                "body": "<p>x</p>",
                "attachmentIds": [other_attachment],
            }
        },
    )
    assert (await world.download("oscar", other_attachment))[0] == 200

    for viewer in ("alice", "zed", "bob"):
        status, body, _ = await world.download(viewer, other_attachment)
        assert (status, body) == (404, NOT_FOUND_BODY), viewer


async def test_another_firms_pending_upload_answers_404(world):
    pending = await world.upload("olga", b"not attached yet")

    status, body, _ = await world.download("alice", pending)
    assert (status, body) == (404, NOT_FOUND_BODY)


async def test_uploader_can_download_its_pending_upload(world):
    pending = await world.upload("bob", b"draft, not sent yet")

    status, _, raw = await world.download("bob", pending)
    assert (status, raw) == (200, b"draft, not sent yet")


async def test_nobody_but_the_uploader_can_download_a_pending_upload(world):
    pending = await world.upload("bob", b"draft, not sent yet")

    outcomes = {
        viewer: (await world.download(viewer, pending))[:2]
        for viewer in ("alice", "paul", "carla", "cleo", "dan", "zed", "olga", "oscar")
    }
    assert outcomes == {viewer: (404, NOT_FOUND_BODY) for viewer in outcomes}


async def test_download_access_follows_favorites_live(world):
    # alice reads this COMPANY conversation only through her favorite bakery.
    _, attachment_id = await world.create_with_attachment("COMPANY", ["carla"], b"figures")
    bakery = {"id": company_id(world.api, "bakery")}

    await world.gql("alice", REMOVE_FAVORITE, bakery)
    assert (await world.download("alice", attachment_id))[0] == 404
    await world.gql("alice", ADD_FAVORITE, bakery)
    assert (await world.download("alice", attachment_id))[0] == 200
