"""The GraphQL documents the tests share, defined once.

Modules that need a richer selection define their own document next to the tests that read it;
the plain "create, answer the id" and "send, answer the id" live here.
"""

from __future__ import annotations

CREATE_CONVERSATION = """
mutation($input: CreateConversationInput!) { createConversation(input: $input) { id } }
"""

SEND_MESSAGE = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }"
