"""The `messager` command line (SPEC §10): serve, import, token, export-schema, reindex-search,
and the compliance commands of SPEC §17: audit, audit verify, export, erase-user, purge.

Every command uses the same data directory and database: `MONGODB_URI` when set; otherwise the
embedded server that a running `messager serve` recorded in the data directory; otherwise an
embedded server started for the length of the command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from graphql_api.auth import CANNOT_ISSUE, DEFAULT_TTL_SECONDS, TokenService
from graphql_api.cors import describe_origins
from graphql_api.database import Db, connect, database_of, ensure_schema
from graphql_api.directory.demo import load_demo
from graphql_api.directory.importer import ImportFileError, import_directory
from graphql_api.directory.service import Directory
from graphql_api.email.transport import transport_description
from graphql_api.embedded import EmbeddedServer, EmbeddedServerError, recorded_uri
from graphql_api.logging_setup import configure_logging
from graphql_api.settings import Settings
from graphql_api.startup_checks import (
    StartupError,
    describe_settings_error,
    ensure_database_reachable,
    ensure_port_free,
)

T = TypeVar("T")
log = logging.getLogger("messager")


class CommandError(Exception):
    """A failure to report in one line on stderr, with exit status 1."""


@contextlib.contextmanager
def database_uri(
    settings: Settings, *, record: bool = False, meanwhile: Callable[[], object] | None = None
) -> Iterator[str]:
    """The URI of the database the command works on, starting an embedded server if needed
    (running `meanwhile` while it boots)."""
    if settings.mongodb_uri:
        yield settings.mongodb_uri
        return
    running = recorded_uri(settings.data_dir)
    if running:
        yield running
        return
    server = EmbeddedServer(settings.data_dir)
    try:
        uri = server.start(meanwhile=meanwhile)
    except EmbeddedServerError as exc:
        raise CommandError(str(exc)) from exc
    try:
        if record:
            server.record()
        yield uri
    finally:
        if record:
            server.forget()
        server.stop()


def run_on_database(settings: Settings, uri: str, work: Callable[[Db], Awaitable[T]]) -> T:
    async def main() -> T:
        client = connect(uri, write_concern=settings.write_concern_setting)
        try:
            db = database_of(client)
            failed = await ensure_schema(db)
            if failed:
                problems = "; ".join(f"{name}: {why}" for name, why in sorted(failed.items()))
                raise CommandError(f"cannot prepare the database: {problems}")
            return await work(db)
        finally:
            await client.close()

    return asyncio.run(main())


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from graphql_api.workers import run_workers, serve_forever

    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("smtp_port", args.smtp_port))
        if v is not None
    }
    settings = settings.model_copy(update=overrides)
    if args.workers < 1:
        raise CommandError("--workers must be at least 1")
    if settings.smtp_port == 0 and args.workers > 1:
        raise CommandError("--workers needs a fixed --smtp-port, which the processes share")
    if args.workers > 1 and settings.port == 0:
        raise CommandError("--workers needs a fixed --port, which the processes share")
    try:  # before anything is printed or started: one line that says what to change
        ensure_port_free(settings.host, settings.port)
        if settings.mongodb_uri:
            ensure_database_reachable(settings.mongodb_uri)
    except StartupError as exc:
        raise CommandError(str(exc)) from None
    # The server's imports take longer than the embedded database's boot: side by side, a
    # restart (after a crash) answers sooner.
    with database_uri(settings, record=True, meanwhile=_import_server) as uri:
        settings = settings.model_copy(update={"mongodb_uri": uri})
        if args.demo:
            users = run_on_database(settings, uri, load_demo)
            tokens = TokenService(settings)
            if tokens.can_issue:
                print("Demo firm loaded. Tokens (valid 12 hours), one per demo user:")
            else:
                print("Demo firm loaded. Sign in through your identity provider (RS256 mode):")
            for email, kind, user_id in users:
                credential = tokens.issue(user_id) if tokens.can_issue else f"sub={user_id}"
                print(f"  {email:<20} {kind:<12} {credential}")
        smtp_url = settings.smtp_url.get_secret_value() if settings.smtp_url else None
        print(f"Emails: {transport_description(smtp_url, settings.data_dir)}")
        if settings.smtp_port is not None:
            print(
                f"Replies by email: SMTP on {settings.host}:{settings.smtp_port} for "
                f"reply+...@{settings.mail_domain}"
            )
        print(f"GraphiQL: {settings.graphiql_url}  (set header Authorization: Bearer <token>)")
        print(describe_origins(settings.cors_origins))
        sys.stdout.flush()
        try:
            if args.workers == 1:
                serve_forever(settings)
            else:
                run_workers(settings, args.workers)
        except OSError as exc:  # the port was taken between the check and the start
            raise CommandError(f"cannot listen on {settings.host}:{settings.port}: {exc}") from None
    return 0


def _import_server() -> None:
    import graphql_api.app  # noqa: F401


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CommandError(f"{path}: no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    with database_uri(settings) as uri:
        try:
            ids = run_on_database(settings, uri, lambda db: import_directory(db, data))
        except ImportFileError as exc:
            raise CommandError(f"{path}: {exc}\nnothing was imported") from exc
    print(json.dumps(ids, indent=2))
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    if args.ttl <= 0:
        raise CommandError("--ttl must be a positive number of seconds")
    if settings.jwt_public_key:  # RS256 mode: before anything is started or written
        raise CommandError(CANNOT_ISSUE)
    with database_uri(settings) as uri:
        user = run_on_database(settings, uri, lambda db: Directory(db).user_by_email(args.email))
    if user is None:
        raise CommandError(f"no user with email {args.email!r}")
    print(TokenService(settings).issue(str(user.id), ttl_seconds=args.ttl))
    return 0


def cmd_export_schema(args: argparse.Namespace, settings: Settings) -> int:
    from schema.schema import export_sdl

    Path(args.output).write_text(export_sdl(), encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


def cmd_reindex_search(args: argparse.Namespace, settings: Settings) -> int:
    from graphql_api.search.index import reindex_all

    with database_uri(settings) as uri:
        count = run_on_database(settings, uri, reindex_all)
    print(f"search fields written for the messages of {count} conversations")
    return 0


def _when(value: str) -> datetime:
    """An ISO 8601 date or time; without a zone, UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date or time (for example 2026-01-31T00:00:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from graphql_api.compliance import commands

    if args.what == "verify":
        with database_uri(settings) as uri:
            good, bad = run_on_database(settings, uri, commands.verify)
        for line in good:
            print(line)
        if bad:
            for line in bad:
                print(f"TAMPERED: {line}")
            raise CommandError(f"the audit chain of {len(bad)} firm(s) does not verify")
        return 0

    async def lines(db: Db) -> int:
        try:
            firms = await commands.firm_ids(db, args.firm)
        except commands.CompanyChoiceError as exc:
            raise CommandError(str(exc)) from None
        count = 0
        async for line in commands.audit_lines(db, firms, args.since, args.until, args.format):
            sys.stdout.write(line)
            count += 1
        return count

    with database_uri(settings) as uri:
        run_on_database(settings, uri, lines)
    sys.stdout.flush()
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from graphql_api.compliance import commands

    out = Path(args.out)
    if not out.parent.is_dir():
        raise CommandError(f"{out.parent}: no such directory")

    async def work(db: Db) -> int:
        try:
            company = await commands.company_by_key(db, args.company, args.firm)
        except commands.CompanyChoiceError as exc:
            raise CommandError(str(exc)) from None
        return await commands.export_to_file(db, company, out)

    with database_uri(settings) as uri:
        size = run_on_database(settings, uri, work)
    print(f"wrote {out} ({size} bytes)")
    return 0


def cmd_erase_user(args: argparse.Namespace, settings: Settings) -> int:
    from graphql_api.compliance import commands

    with database_uri(settings) as uri:
        erased, finished = run_on_database(
            settings, uri, lambda db: commands.erase(db, args.email, args.delete_messages)
        )
    if finished:
        print(f"finished {finished} erasure(s) that a crash had interrupted")
    if erased is None:
        if finished:
            return 0  # a rerun after a crash: its email was already gone
        raise CommandError(f"no user with email {args.email!r}")
    kept = (
        f"{erased.messages_emptied} messages emptied" if args.delete_messages else "messages kept"
    )
    print(f"erased user {erased.user_id}: personal data removed, {kept}")
    return 0


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    from graphql_api.compliance import commands

    with database_uri(settings) as uri:
        purged = run_on_database(settings, uri, commands.purge)
    print(f"purged {purged} conversations past their firm's retention")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="messager", description="Messager API")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API")
    serve.add_argument("--demo", action="store_true", help="load a demo firm and print tokens")
    serve.add_argument("--host", help="overrides MESSAGER_HOST")
    serve.add_argument("--port", type=int, help="overrides MESSAGER_PORT")
    serve.add_argument("--workers", type=int, default=1, help="server processes")
    serve.add_argument(
        "--smtp-port", type=int, help="also accept replies by email on this SMTP port"
    )
    serve.set_defaults(handler=cmd_serve)

    importer = commands.add_parser("import", help="create or update a directory from JSON")
    importer.add_argument("file")
    importer.set_defaults(handler=cmd_import)

    token = commands.add_parser("token", help="print a token for a user")
    token.add_argument("email")
    token.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="seconds")
    token.set_defaults(handler=cmd_token)

    export = commands.add_parser("export-schema", help="write the GraphQL SDL")
    export.add_argument("--output", default="schema.graphql")
    export.set_defaults(handler=cmd_export_schema)

    reindex = commands.add_parser(
        "reindex-search",
        help="write the search fields of every message afresh (messages stored before search)",
    )
    reindex.set_defaults(handler=cmd_reindex_search)

    audit = commands.add_parser(
        "audit", help="print the audit log (CSV or JSON Lines), or verify its hash chains"
    )
    audit.add_argument("what", nargs="?", choices=["verify"], help="check every firm's chain")
    audit.add_argument("--since", type=_when, help="from this date or time (inclusive)")
    audit.add_argument("--until", type=_when, help="before this date or time (exclusive)")
    audit.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
    audit.add_argument("--firm", help="only this firm (its key)")
    audit.set_defaults(handler=cmd_audit)

    export_file = commands.add_parser("export", help="write a company's client file as a ZIP")
    export_file.add_argument("--company", required=True, help="the company's key")
    export_file.add_argument("--firm", help="the firm's key, when several have that company key")
    export_file.add_argument("--out", required=True, help="the ZIP file to write")
    export_file.set_defaults(handler=cmd_export)

    erase = commands.add_parser("erase-user", help="erase a person's personal data")
    erase.add_argument("email")
    erase.add_argument(
        "--delete-messages", action="store_true", help="also empty the messages it wrote"
    )
    erase.set_defaults(handler=cmd_erase_user)

    purge = commands.add_parser(
        "purge", help="purge now the conversations past their firm's retention"
    )
    purge.set_defaults(handler=cmd_purge)
    return parser


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise CommandError(describe_settings_error(exc)) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_format)
        return int(args.handler(args, settings))
    except CommandError as exc:
        print(f"messager: {exc}", file=sys.stderr)
        return 1
