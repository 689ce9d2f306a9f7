"""JSON for GraphQL answers and WebSocket frames, encoded with orjson (issue 16).

The standard library's `json` was a visible share of every answer (a page of 50 messages is
about 30 KB of JSON); orjson writes the same JSON several times faster, as UTF-8 bytes that go
to the socket as they are. Anything orjson refuses (an integer beyond 64 bits in an error's
extensions, say) falls back to the standard library, so nothing that encoded before fails now.
Requests are still parsed by `json`: they are small, and its nesting limit is the one the API
answers with a coded error (issue 20), where orjson would accept 1,000 levels.

Subscription frames: a shared event (`schema.shared_events`) hands every subscriber with the
same selection the same `data` object. Its encoding is kept, keyed by that object's identity,
so 1,000 subscribers of one message cost one encoding of its payload, not 1,000; each frame
only adds its own operation id around it.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping

import orjson

ENCODED_PAYLOADS_KEPT = 256
"""Recent payload encodings kept: a shared event reaches all its subscribers within moments."""

_encoded_payloads: OrderedDict[int, tuple[object, bytes]] = OrderedDict()
"""id(data) -> (data, its encoding). The entry holds `data` itself, so the id cannot be reused
by another object while the entry lives; a hit is checked by identity."""


def encode(data: object) -> bytes:
    """`data` as compact JSON in UTF-8."""
    try:
        return orjson.dumps(data)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(data, separators=(",", ":")).encode()


def encode_frame(message: Mapping[str, object]) -> bytes:
    """A WebSocket protocol message; a result's payload `{"data": ...}` is encoded once per
    `data` object, however many subscribers receive it."""
    payload = message.get("payload")
    if (
        len(message) == 3
        and "id" in message
        and "type" in message
        and isinstance(payload, dict)
        and len(payload) == 1
        and "data" in payload
    ):
        return b'{"id":%b,"type":%b,"payload":%b}' % (
            encode(message["id"]),
            encode(message["type"]),
            _encoded_payload(payload),
        )
    return encode(message)


def _encoded_payload(payload: dict[str, object]) -> bytes:
    data = payload["data"]
    if data is None:
        return b'{"data":null}'
    kept = _encoded_payloads.get(id(data))
    if kept is not None and kept[0] is data:
        _encoded_payloads.move_to_end(id(data))
        return kept[1]
    encoded = encode(payload)
    _encoded_payloads[id(data)] = (data, encoded)
    while len(_encoded_payloads) > ENCODED_PAYLOADS_KEPT:
        _encoded_payloads.popitem(last=False)
    return encoded
