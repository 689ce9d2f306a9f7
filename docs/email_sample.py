"""Render the sample email of docs/email.md with the real composer and templates.

python docs/email_sample.py /tmp/email.html
chromium --headless --screenshot=docs/email.png --window-size=800,900 /tmp/email.html
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from graphql_api.conversations.models import Conversation, ConversationType
from graphql_api.directory.models import User, UserKind
from graphql_api.email.compose import compose
from graphql_api.email.content import ConversationDigest, Digest, Preview
from graphql_api.email.preferences import EmailFrequency


def conversation(number: int, subject: str) -> Conversation:
    return Conversation(
        id=f"{number:024x}",
        firm_id="f" * 24,
        type=ConversationType.COMPANY,
        company_id="c" * 24,
        subject=subject,
        participant_ids=(),
        created_by="a" * 24,
        created_at=datetime.now(UTC),
        last_activity_ms=0,
        last_message_id=None,
        message_count=1,
        client_visible=True,
    )


def sample() -> Digest:
    bob = User(
        id="b" * 24,
        firm_id="f" * 24,
        key="bob",
        kind=UserKind.CLIENT,
        name="Bob Martin",
        email="bob@bakery.test",
        company_ids=frozenset(),
        favorite_company_ids=frozenset(),
    )
    accounts = ConversationDigest(
        conversation=conversation(1, "2025 annual accounts"),
        company="Martin Bakery",
        link="https://app.acme-accounting.example/conversations/1",
        reply_address="reply+abc@acme.test",
        previews=[
            Preview(
                "Alice Roy",
                "Could you send the March invoices before Friday? We need them to close the "
                "quarter.",
                2,
            ),
            Preview(
                "Paul Girard",
                "I have attached the draft balance sheet: please check the stock figures.",
                1,
            ),
        ],
        authors=["Paul Girard", "Alice Roy"],
        count=2,
    )
    payroll = ConversationDigest(
        conversation=conversation(2, "Payroll <March>"),
        company="Martin Bakery",
        link="https://app.acme-accounting.example/conversations/2",
        reply_address="reply+def@acme.test",
        previews=[
            Preview("Alice Roy", "The payslips are ready; the new apprentice starts on the 1st.", 3)
        ],
        authors=["Alice Roy"],
        count=1,
    )
    return Digest(
        user=bob,
        locale="en",
        kind=EmailFrequency.IMMEDIATE,
        conversations=[accounts, payroll],
        notification_ids=[],
    )


def main() -> None:
    message = compose(
        sample(),
        message_id="<i.1.b@acme.test>",
        sender="Acme Accounting <notifications@acme.test>",
        unsubscribe_url="https://messager.acme.test/email/unsubscribe?token=...",
    )
    html_part = message.get_payload()[1]
    Path(sys.argv[1]).write_bytes(html_part.get_payload(decode=True))
    print(message["Subject"])


if __name__ == "__main__":
    main()
