"""Email notifications, daily digests, one-click unsubscribe and reply by email (SPEC §15).

- `preferences`: a user's `notificationSettings` (IMMEDIATE, DAILY at an hour in a time zone, OFF).
- `schedule`: when a window's email is due (grid of delay windows; daily hours across DST).
- `signing`: the signed tokens of reply addresses and unsubscribe links.
- `outbox`: the durable outbox in MongoDB: planning windows, claiming them with a lease,
  recording what was sent.
- `content`: what one email lists, decided by the access policy at sending time.
- `compose`: the message itself (text and HTML from Jinja2 templates, headers).
- `transport`: SMTP (aiosmtplib) or a Maildir under the data directory.
- `job`: the background task of each serve process that plans and sends.
- `unsubscribe`: the RFC 8058 one-click endpoint.
- `inbound` and `reply_text`: the SMTP listener that posts replies by email.
docs/email.md tells the whole story.
"""
