"""Attachments (SPEC §7): uploads streamed into GridFS, signed download links, cleanup."""
