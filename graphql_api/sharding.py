"""The shard keys for a sharded cluster: the data `docs/scaling.md` shows and the tests check.

Each sharded collection's key is chosen so that the requests that matter reach one shard, that
every unique index can start with it (MongoDB enforces uniqueness per shard only, so a unique
index must begin with the shard key's fields, `tests/test_sharding.py`), and that inserts spread
over the shards: every key starts with a hashed field, since ids are ObjectIds that grow with
time and a ranged key starting with one sends every new document to the last chunk. Every
single-document write names its collection's full shard key (`conversation_key`, the read-mark
upserts...), which MongoDB requires of upserts and uses to route the others; the suite checks
every such write it sends.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ShardKey:
    fields: tuple[tuple[str, int | str], ...]
    why: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.fields)

    def mongosh(self) -> str:
        return "{ " + ", ".join(f"{n}: {_js(d)}" for n, d in self.fields) + " }"


SHARD_KEYS: dict[str, ShardKey] = {
    "conversations": ShardKey(
        (("firm_id", "hashed"), ("created_by", 1)),
        "Every inbox query and `conversation(id)` filters by the viewer's firm, so they reach "
        "the shard of that firm. The creator splits a large firm, and makes the retry-key "
        "index `(firm_id, created_by, client_message_id)` enforceable.",
    ),
    "messages": ShardKey(
        (("conversation_id", "hashed"),),
        "History, replay, the `seq` counter and retry keys all address one conversation; "
        "hashed, because conversation ids grow with time and the newest conversations are "
        "the busiest.",
    ),
    "notifications": ShardKey(
        (("user_id", "hashed"),),
        "Listing, unread counts and mark-read are per user; a message's fan-out writes to "
        "several shards at once (`insert_many(ordered=False)`).",
    ),
    "read_marks": ShardKey(
        (("user_id", "hashed"),),
        "A user's marks are read together (one inbox page) and written one by one.",
    ),
    "audit_log": ShardKey(
        (("firm_id", "hashed"),),
        "A firm's records are read, exported and verified together, in chain order; the "
        "unique `(firm_id, seq)` index starts with it.",
    ),
    "fs.chunks": ShardKey(
        (("files_id", "hashed"),),
        "A file's chunks stay together, so a download reads one shard; hashed, because "
        "attachment ids grow with time.",
    ),
}

UNSHARDED: dict[str, str] = {
    "firms": "small",
    "recovery_state": "a handful of documents: the crash recovery's watermarks",
    "email_jobs": "a handful of documents: the email planner's cursor",
    "email_outbox": "one document per email sent; read by due time across users",
    "companies": "small; read with the firm",
    "users": "small; every request reads the viewer by `_id`",
    "attachments": "one small document per upload",
    "retained_messages": "one document per deleted message; read only by the admin export",
    "fs.files": "one small document per upload",
    "audit_chains": "one document per firm: the head of its audit chain",
    "purges": "a handful of documents: the retention purges in progress",
}


def _js(direction: int | str) -> str:
    return f'"{direction}"' if isinstance(direction, str) else str(direction)


def markdown_table() -> str:
    """The table `docs/scaling.md` shows (a test keeps the two equal)."""
    rows = ["| collection | shard key | why |", "|---|---|---|"]
    for name, key in SHARD_KEYS.items():
        rows.append(f"| `{name}` | `{key.mongosh()}` | {key.why} |")
    for name, why in UNSHARDED.items():
        rows.append(f"| `{name}` | unsharded | {why} |")
    return "\n".join(rows)


def shard_commands(database: str) -> str:
    """The mongosh commands that apply the keys (on empty collections MongoDB creates the
    hashed indexes they need; on populated ones, create them first)."""
    return "\n".join(
        f'sh.shardCollection("{database}.{name}", {key.mongosh()})'
        for name, key in SHARD_KEYS.items()
    )
