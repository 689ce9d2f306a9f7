"""What a conversation looks like in a client-file export: `transcript.html` and
`conversation.json`, each produced a message at a time (a long history is never held whole).

The transcript is a self-contained page any browser opens from the extracted ZIP: inline styles,
a Content-Security-Policy that allows nothing else, every name and subject escaped. Message
bodies are the stored HTML, which the sanitizer reduced to the safe set of SPEC §6 when it was
written. It shows everything the firm holds: messages, internal notes (marked internal),
timeline events, and deleted messages marked deleted with the content kept for the firm's duties.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from typing import Any

from graphql_api.database import Document
from graphql_api.directory.models import FORMER_USER_NAME

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2933;
 max-width:860px;margin:2rem auto;padding:0 1rem;background:#f7f8fa}
header{border-bottom:2px solid #d9e2ec;margin-bottom:1.5rem}
h1{font-size:1.5rem;margin:.2rem 0}
.facts{color:#52606d;margin:.3rem 0 1rem}
ol{list-style:none;padding:0}
li.entry{background:#fff;border:1px solid #d9e2ec;border-radius:8px;padding:.8rem 1rem;
 margin:.8rem 0}
li.note{background:#fffbea;border-color:#f0b429}
li.event{background:transparent;border-style:dashed;color:#52606d;font-size:.9rem}
li.deleted{background:#fff5f5;border-color:#e12d39}
.meta{font-size:.85rem;color:#52606d;margin-bottom:.4rem}
.author{font-weight:600;color:#102a43}
.badge{display:inline-block;font-size:.75rem;font-weight:700;border-radius:4px;
 padding:0 .4rem;margin-left:.4rem;text-transform:uppercase;letter-spacing:.03em}
.badge.note{background:#f0b429;color:#513c06}
.badge.deleted{background:#e12d39;color:#fff}
.badge.edited{background:#d9e2ec;color:#243b53}
.retained{border-left:3px solid #e12d39;padding-left:.8rem;margin-top:.4rem}
.files{margin:.5rem 0 0;padding-left:1.2rem;font-size:.9rem}
footer{color:#829ab1;font-size:.8rem;margin-top:2rem}
"""


@dataclass
class People:
    """Names by user id, for the firm being exported; a missing id is a former user."""

    names: Mapping[str, str] = field(default_factory=dict)

    def name(self, user_id: str | None) -> str:
        if user_id is None:
            return "System"
        return self.names.get(user_id, FORMER_USER_NAME)


def when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def kind_of(message: Document) -> str:
    return str(message.get("kind") or "MESSAGE")


# -- transcript.html ---------------------------------------------------------------------------


def transcript_head(conversation: Document, company_name: str, people: People) -> str:
    subject = escape(conversation.get("subject") or "")
    participants = ", ".join(
        escape(people.name(p)) for p in conversation.get("participant_ids", ())
    )
    created_ms = conversation.get("created_ms") or _created_ms(conversation)
    facts = (
        f"{escape(company_name)} · {escape(conversation.get('type') or '')} conversation · "
        f"started {when(created_ms)} by {escape(people.name(conversation.get('created_by')))}"
    )
    status = conversation.get("status")
    if status:
        facts += f" · status {escape(status)}"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{subject}</title><style>{STYLE}</style></head><body>"
        f'<header><h1>{subject}</h1><p class="facts">{facts}</p>'
        f'<p class="facts">Participants: {participants}</p></header><ol>\n'
    )


def transcript_entry(
    message: Document, people: People, files: list[Document], retained: Document | None
) -> str:
    kind = kind_of(message)
    author = escape(people.name(message.get("author_id")))
    at = when(message.get("created_ms"))
    if kind == "EVENT":
        text = _event_text(message, people)
        return f'<li class="entry event"><span class="meta">{at}</span> {text}</li>\n'
    classes = ["entry"]
    badges = ""
    if kind == "NOTE":
        classes.append("note")
        badges += '<span class="badge note">Internal note</span>'
    deleted_ms = message.get("deleted_ms")
    if message.get("edited_ms"):
        badges += f'<span class="badge edited">Edited {when(message["edited_ms"])}</span>'
    body = message.get("body") or ""
    if deleted_ms is not None:
        classes.append("deleted")
        badges += (
            f'<span class="badge deleted">Deleted {when(deleted_ms)} by '
            f"{escape(people.name(message.get('deleted_by')))}</span>"
        )
        kept = (retained or {}).get("body") or ""
        body = (
            f'<div class="retained"><em>Retained content:</em>{kept}</div>'
            if kept
            else "<p><em>No content was retained.</em></p>"
        )
    revisions = message.get("revisions") or []
    if revisions:
        body += f'<p class="meta">{len(revisions)} earlier version(s) in conversation.json</p>'
    listed = "".join(
        f'<li><a href="{escape(_relative_path(f))}">{escape(f["filename"])}</a> '
        f"({_size(f.get('size', 0))})</li>"
        for f in files
    )
    files_html = f'<ul class="files">{listed}</ul>' if listed else ""
    return (
        f'<li class="{" ".join(classes)}" id="m{message.get("seq")}">'
        f'<div class="meta"><span class="author">{author}</span> · {at}{badges}</div>'
        f'<div class="body">{body}</div>{files_html}</li>\n'
    )


def transcript_foot(exported_ms: int) -> str:
    return (
        f"</ol><footer>Exported {when(exported_ms)} by Messager. Every file of this export and "
        "its SHA-256 are listed in manifest.json.</footer></body></html>\n"
    )


def _event_text(message: Document, people: People) -> str:
    event = message.get("event") or {}
    actor = escape(people.name(event.get("actor_id") or message.get("author_id")))
    changes = []
    if event.get("added_user_ids"):
        changes.append(
            "added " + ", ".join(escape(people.name(u)) for u in event["added_user_ids"])
        )
    if event.get("removed_user_ids"):
        changes.append(
            "removed " + ", ".join(escape(people.name(u)) for u in event["removed_user_ids"])
        )
    if event.get("new_subject") is not None:
        changes.append(
            f"renamed the conversation from “{escape(event.get('old_subject') or '')}” to "
            f"“{escape(event['new_subject'])}”"
        )
    if event.get("status"):
        changes.append(f"set the status to {escape(event['status'])}")
    if event.get("assignee_changed") or event.get("assignee_id"):
        assignee = event.get("assignee_id")
        changes.append(
            f"assigned it to {escape(people.name(assignee))}"
            if assignee
            else "cleared the assignee"
        )
    return f"<strong>{actor}</strong> {'; '.join(changes) or 'changed the conversation'}"


def _size(size: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


def _created_ms(conversation: Document) -> int | None:
    created = conversation.get("created_at")
    if isinstance(created, datetime):
        aware = created if created.tzinfo else created.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    return None


# -- conversation.json -------------------------------------------------------------------------


def attachment_path(attachment: Document) -> str:
    """Where a file goes in the conversation's folder: its id keeps names unique."""
    return f"attachments/{attachment['_id']}-{attachment['filename']}"


_relative_path = attachment_path


def json_head(conversation: Document, company: Document, people: People) -> str:
    header = {
        "id": conversation["_id"],
        "type": conversation.get("type"),
        "subject": conversation.get("subject"),
        "company": {"id": company["_id"], "key": company.get("key"), "name": company["name"]},
        "createdAt": iso(conversation.get("created_ms") or _created_ms(conversation)),
        "createdBy": _person(conversation.get("created_by"), people),
        "participants": [_person(p, people) for p in conversation.get("participant_ids", ())],
        "status": conversation.get("status"),
        "assignee": _person(conversation.get("assignee_id"), people),
        "lastActivityAt": iso(conversation.get("last_activity_ms")),
    }
    encoded = json.dumps(header, ensure_ascii=False, indent=1)
    return encoded[: encoded.rfind("}")].rstrip() + ',\n "messages": [\n'


def json_entry(
    message: Document, people: People, files: list[Document], retained: Document | None, first: bool
) -> str:
    entry: dict[str, Any] = {
        "id": message["_id"],
        "seq": message.get("seq"),
        "kind": kind_of(message),
        "internal": kind_of(message) == "NOTE",
        "author": _person(message.get("author_id"), people),
        "createdAt": iso(message.get("created_ms")),
        "body": message.get("body") or "",
        "bodyText": message.get("body_text") or "",
        "attachments": [
            {
                "id": f["_id"],
                "filename": f["filename"],
                "contentType": f.get("content_type"),
                "size": f.get("size"),
                "path": attachment_path(f),
            }
            for f in files
        ],
        "editedAt": iso(message.get("edited_ms")),
        "revisions": [
            {
                "body": r.get("body"),
                "bodyText": r.get("body_text"),
                "writtenAt": iso(r.get("written_ms")),
            }
            for r in message.get("revisions") or []
        ],
        "deletedAt": iso(message.get("deleted_ms")),
        "deletedBy": _person(message.get("deleted_by"), people),
    }
    if message.get("event"):
        entry["event"] = message["event"]
    if retained is not None:
        entry["retained"] = {
            "body": retained.get("body"),
            "bodyText": retained.get("body_text"),
            "attachmentIds": retained.get("attachment_ids", []),
            "revisions": retained.get("revisions", []),
        }
    text = json.dumps(entry, ensure_ascii=False, default=str)
    return ("" if first else ",\n") + "  " + text


def json_foot() -> str:
    return "\n ]\n}\n"


def _person(user_id: str | None, people: People) -> dict[str, str] | None:
    if user_id is None:
        return None
    return {"id": user_id, "name": people.name(user_id)}
