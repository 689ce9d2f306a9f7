"""Notifications: one per participant (the author excepted) per new message."""
