"""The client-file export (SPEC §17): a ZIP of one company's whole file, for admins over HTTP
and for operators from the command line, whose manifest's SHA-256 verify every file, with a
transcript a real browser shows."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.cli_helpers import cli_env, messager
from tests.compliance_helpers import (
    audit_entries,
    conversation_with_file,
    make_admins,
    manifest_of,
    opened_zip,
)
from tests.conftest import Api
from tests.conversation_helpers import company_id, create, send
from tests.node_clients import node_script
from tests.upload_helpers import generated_bytes

DOCS_SCREENSHOT = Path(__file__).parent.parent / "docs" / "export.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BROWSER_WAIT = 30.0
NOTE = """mutation($c: ID!, $b: String!) {
  sendMessage(input: {conversationId: $c, body: $b, internal: true}) { id } }"""
RENAME = """mutation($c: ID!, $s: String!) {
  renameConversation(conversationId: $c, subject: $s) { id } }"""
DELETE = "mutation($m: ID!) { deleteMessage(messageId: $m) { id } }"
FILE_BYTES = generated_bytes(3 * 1024 * 1024 + 17)  # several GridFS chunks, not a round size


@pytest.fixture
async def client_file(api: Api, db) -> dict[str, str]:
    """bakery's file: a conversation with a 3 MiB file and a reply, another one; a private
    conversation and garage's one that must stay out."""
    await make_admins(db)
    conversation, attachment = await conversation_with_file(
        api, data=FILE_BYTES, body="<p>Here is the <b>ledger</b></p>"
    )
    await send(api, "bob", conversation, "<p>Thanks, <i>received</i></p>")
    await api.gql(
        NOTE, {"c": conversation, "b": "<p>Check the <b>VAT</b> lines first</p>"}, as_="alice"
    )
    await api.gql(RENAME, {"c": conversation, "s": "Annual accounts 2026"}, as_="alice")
    wrong = await send(api, "alice", conversation, "<p>Payslips of another client</p>")
    await api.gql(DELETE, {"m": wrong["id"]}, as_="alice")
    other = await create(api, "bob", "COMPANY", ["alice"], company="bakery", subject="Payroll")
    await create(api, "alice", "PRIVATE", ["paul"], subject="Staff lunch")
    await create(api, "dan", "COMPANY", ["alice"], company="garage", subject="Garage VAT")
    return {"conversation": conversation, "attachment": attachment, "other": other["id"]}


async def export_over_http(api: Api, as_: str | None, company: str) -> tuple[int, bytes]:
    response = await api.http.get(f"/companies/{company}/export", headers=api.headers(as_))
    return response.status, await response.read()


def check_manifest(archive: zipfile.ZipFile) -> dict[str, str]:
    """Every file but the manifest is listed once with its size and SHA-256, which verify;
    answers the paths listed, each to the member's name."""
    manifest = manifest_of(archive)
    root = next(iter(archive.namelist())).split("/")[0]
    listed = {f"{root}/{entry['path']}": entry for entry in manifest["files"]}
    members = [n for n in archive.namelist() if not n.endswith("manifest.json")]
    assert sorted(listed) == sorted(members)
    for name, entry in listed.items():
        data = archive.read(name)
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"])
    return {entry["path"]: name for name, entry in listed.items()}


async def test_an_admin_downloads_the_whole_client_file_and_every_hash_verifies(
    api: Api, client_file
):
    status, data = await export_over_http(api, "alice", company_id(api, "bakery"))
    assert status == 200
    archive = opened_zip(data)
    paths = check_manifest(archive)
    folders = {path.split("/")[0] for path in paths}
    assert len(folders) == 2  # bakery's two conversations, nothing else
    [ledger] = [p for p in paths if p.endswith("-ledger.pdf")]
    assert archive.read(paths[ledger]) == FILE_BYTES
    folder = ledger.split("/")[0]
    assert folder.endswith(client_file["conversation"])
    page = archive.read(paths[f"{folder}/transcript.html"]).decode()
    assert "Here is the <b>ledger</b>" in page and "Bob Martin" in page
    record = json.loads(archive.read(paths[f"{folder}/conversation.json"]))
    assert record["subject"] == "Annual accounts 2026"
    messages = record["messages"]
    assert [(m["kind"], m["bodyText"]) for m in messages] == [
        ("MESSAGE", "Here is the ledger"),
        ("MESSAGE", "Thanks, received"),
        ("NOTE", "Check the VAT lines first"),
        ("EVENT", ""),
        ("MESSAGE", ""),
    ]
    assert messages[2]["internal"] is True
    assert messages[3]["event"]["new_subject"] == "Annual accounts 2026"
    assert messages[4]["deletedBy"]["name"] == "Alice Roy"
    assert messages[4]["retained"]["bodyText"] == "Payslips of another client"
    assert record["messages"][0]["attachments"][0]["path"] == ledger.split("/", 1)[1]
    subjects = {
        json.loads(archive.read(name))["subject"]
        for name in archive.namelist()
        if name.endswith("conversation.json")
    }
    assert subjects == {"Annual accounts 2026", "Payroll"}


async def test_the_export_is_audited_before_it_is_served(api: Api, client_file):
    await export_over_http(api, "alice", company_id(api, "bakery"))
    [entry] = await audit_entries(api, "alice", action="company.exported")
    assert entry["actor"]["name"] == "Alice Roy"
    assert entry["company"]["name"] == "Martin Bakery"


@pytest.mark.parametrize(
    ("user", "company", "status", "code"),
    [
        ("paul", "bakery", 403, "FORBIDDEN"),  # a practitioner who is not an admin
        ("bob", "bakery", 403, "FORBIDDEN"),  # a client
        ("olga", "bakery", 404, "NOT_FOUND"),  # another firm's admin
        ("alice", "rival", 404, "NOT_FOUND"),  # another firm's company
        ("alice", "nonsense", 404, "NOT_FOUND"),
        (None, "bakery", 401, "UNAUTHENTICATED"),
    ],
)
async def test_only_an_admin_of_the_firm_exports_its_companies(
    api: Api, client_file, user, company, status, code
):
    target = api.ids["companies"].get(company, company)
    answer, data = await export_over_http(api, user, target)
    assert (answer, json.loads(data)["error"]["code"]) == (status, code)
    assert await audit_entries(api, "alice", action="company.exported") == []


async def test_the_command_line_writes_the_same_file_and_audits_it(
    api: Api, client_file, tmp_path: Path, mongo_uri: str
):
    out = tmp_path / "bakery.zip"
    env = cli_env(tmp_path / "data", mongo_uri)
    result = await messager(
        "export", "--company", "bakery", "--out", str(out), env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    archive = opened_zip(out.read_bytes())
    paths = check_manifest(archive)
    assert any(path.endswith("-ledger.pdf") for path in paths)
    [entry] = await audit_entries(api, "alice", action="company.exported")
    assert (entry["actor"], entry["address"]) == (None, "command line")
    unknown = await messager(
        "export", "--company", "nope", "--out", str(out), env=env, cwd=tmp_path
    )
    assert unknown.returncode == 1 and "no company with key 'nope'" in unknown.stderr


async def test_the_transcript_reads_well_in_a_real_browser(
    api: Api, client_file, node: str, tmp_path: Path
):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's `chromium` is not installed: apt-get install -y chromium"
    status, data = await export_over_http(api, "alice", company_id(api, "bakery"))
    assert status == 200
    archive = opened_zip(data)
    archive.extractall(tmp_path / "export")
    [page_path] = [
        tmp_path / "export" / name
        for name in archive.namelist()
        if name.endswith("transcript.html") and client_file["conversation"] in name
    ]
    screenshot = tmp_path / "export.png"
    env = {"CHROMIUM": chromium, "MESSAGER_TIMEOUT_MS": str(int(BROWSER_WAIT * 1000))}
    async with node_script(node, "transcript.mjs", str(page_path), str(screenshot), env=env) as js:
        page = await js.expect("page", within=BROWSER_WAIT)
        assert await js.exit_code() == 0, js.report()
    assert page["title"] == "Annual accounts 2026"
    entries = [(entry["classes"], entry["text"]) for entry in page["entries"]]
    assert [classes for classes, _ in entries] == [
        "entry",
        "entry",
        "entry note",
        "entry event",
        "entry deleted",
    ]
    texts = [text for _, text in entries]
    assert "Alice Roy" in texts[0] and "Here is the ledger" in texts[0]
    assert "ledger.pdf" in texts[0]
    assert "Bob Martin" in texts[1] and "Thanks, received" in texts[1]
    assert "INTERNAL NOTE" in texts[2] and "Check the VAT lines first" in texts[2]
    assert "renamed the conversation" in texts[3] and "Annual accounts 2026" in texts[3]
    assert "DELETED" in texts[4] and "Payslips of another client" in texts[4]
    assert "Martin Bakery" in page["text"]
    assert (page["requests"], page["consoleErrors"]) == ([], [])
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    if os.environ.get("MESSAGER_UPDATE_SCREENSHOT"):
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)
