"""`/email/unsubscribe?token=...`: RFC 8058 one-click unsubscribe, and its page for people.

- `POST` (what mail clients send for `List-Unsubscribe-Post: List-Unsubscribe=One-Click`, and
  what the page's button sends) sets the user's email setting to OFF. Each email's link works
  once: its use is recorded on the email's outbox document in the same atomic update that
  checks it was unused, so a replay, or the link of an old email after the user turned emails
  on again, changes nothing. A forged or unknown token changes nothing either (400).
- `GET` never changes anything (mail scanners follow links): it answers a small page whose
  button posts the same token.
"""

from __future__ import annotations

import html

from aiohttp import web
from pymongo import ReturnDocument

from graphql_api import clock
from graphql_api.errors import BadUserInput, error_response
from graphql_api.keys import SERVICES

INVALID = "this unsubscribe link is invalid"
EXPIRED = "this unsubscribe link has expired: change your email settings in the application"

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Messager emails</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem">
<h1 style="font-size:1.3rem">Messager emails</h1>
{body}
</body></html>"""


def _page(body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=_PAGE.format(body=body),
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'",
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


async def confirm_page(request: web.Request) -> web.Response:
    token = request.query.get("token", "")
    if request.app[SERVICES].email_signer.read_unsubscribe_token(token) is None:
        return _page(f"<p>{html.escape(INVALID)}.</p>", status=400)
    action = html.escape(f"/email/unsubscribe?token={token}", quote=True)
    return _page(
        "<p>Stop the email notifications of new messages? You can turn them on again in the "
        "settings of the application.</p>"
        f'<form method="post" action="{action}"><button type="submit">Stop these emails'
        "</button></form>"
    )


async def unsubscribe(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    email_id = services.email_signer.read_unsubscribe_token(request.query.get("token", ""))
    if email_id is None:
        return error_response(BadUserInput(INVALID))
    first_use = await services.db.email_outbox.find_one_and_update(
        {"_id": email_id, "unsubscribed_ms": {"$eq": 0}},
        {"$set": {"unsubscribed_ms": clock.now_ms()}},
        projection={"user_id": 1},
        return_document=ReturnDocument.AFTER,
    )
    if first_use is not None:
        await services.preferences.turn_off(first_use["user_id"])
    elif await services.db.email_outbox.find_one({"_id": email_id}, {"_id": 1}) is None:
        # Records are kept 30 days (outbox.KEEP_RECORDS).
        return error_response(BadUserInput(EXPIRED))
    # A replay answers like the first use, and changes nothing.
    form = await request.post()
    if "List-Unsubscribe" in form:  # RFC 8058's body: a mail client, not a person
        return web.json_response({"unsubscribed": True})
    return _page("<p>Done: you will no longer receive email notifications.</p>")
