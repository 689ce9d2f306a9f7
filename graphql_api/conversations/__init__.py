"""Conversations and their messages: creation, replies, inbox, history and read state."""
