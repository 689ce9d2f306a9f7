"""The GraphQL documents the tests share, defined once.

Modules that need a richer selection define their own document next to the tests that read it;
the plain "create, answer the id" and "send, answer the id" live here, and so does every document
more than one test module sends (test modules never import one another).
"""

from __future__ import annotations

CREATE_CONVERSATION = """
mutation($input: CreateConversationInput!) { createConversation(input: $input) { id } }
"""

SEND_MESSAGE = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }"

# Editing and deleting a message (SPEC §14), answering the fields an edit or a deletion changes.
EDIT_MESSAGE = """
mutation($id: ID!, $body: String!) {
  editMessage(messageId: $id, body: $body) {
    id body bodyText editedAt revisions { body bodyText editedAt } deletedAt
  }
}
"""
DELETE_MESSAGE = """
mutation($id: ID!) {
  deleteMessage(messageId: $id) {
    id body bodyText deletedAt deletedBy { id } attachments { id } revisions { body }
  }
}
"""
