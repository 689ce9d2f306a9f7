"""Start-up failures said in one line, before anything else is printed (SPEC §19).

A setting that does not parse, a port already taken, a database that does not answer: each is
found before `messager serve` prints its banner or starts an embedded server, and reported as one
line naming what to change, with no stack trace (`cli.CommandError`).
"""

from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit

from pydantic import ValidationError
from pymongo import MongoClient
from pymongo.errors import ConfigurationError, PyMongoError

DATABASE_CHECK_TIMEOUT_MS = 5000
SECRET_SETTINGS = frozenset({"jwt_secret", "metrics_token", "mongodb_uri"})


class StartupError(Exception):
    """What is wrong and what to change, in one line."""


def environment_name(field: str) -> str:
    return "MONGODB_URI" if field == "mongodb_uri" else f"MESSAGER_{field.upper()}"


def describe_settings_error(error: ValidationError) -> str:
    problems = []
    for detail in error.errors():
        field = str(detail["loc"][0]) if detail["loc"] else "?"
        message = detail["msg"].removeprefix("Value error, ")
        shown = "" if field in SECRET_SETTINGS else f"={detail.get('input')!s}"
        problems.append(f"{environment_name(field)}{shown}: {message}")
    return "bad setting " + "; ".join(problems) + " (change it in the environment)"


def ensure_port_free(host: str, port: int) -> None:
    """Fail now if the API could not listen on host:port (port 0: any free port, always fine)."""
    change = "choose another with --port or MESSAGER_PORT"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(
            f"cannot listen on host {host!r} ({exc.strerror}): set --host or MESSAGER_HOST to an "
            "address of this machine, such as 127.0.0.1"
        ) from None
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            # As the server will: a port left in TIME_WAIT by a previous run is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise StartupError(_bind_problem(exc, host, port, change)) from None


def _bind_problem(error: OSError, host: str, port: int, change: str) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use: stop the program using it, or {change}"
    if error.errno == errno.EACCES:
        return f"no permission to listen on port {port}: {change} (above 1023)"
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"{host} is not an address of this machine: set --host or MESSAGER_HOST "
            "(127.0.0.1, or 0.0.0.0 for every interface)"
        )
    return f"cannot listen on {host}:{port} ({error.strerror}): {change}"


def redacted(uri: str) -> str:
    """The URI without its credentials, to print."""
    if "://" not in uri:
        return uri.rsplit("@", 1)[-1]
    parts = urlsplit(uri)
    hosts = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{hosts}{parts.path}"


def ensure_database_reachable(uri: str) -> None:
    """Fail now if the database at MONGODB_URI does not answer a ping."""
    try:
        client: MongoClient = MongoClient(uri, serverSelectionTimeoutMS=DATABASE_CHECK_TIMEOUT_MS)
    except (ConfigurationError, ValueError) as exc:
        raise StartupError(
            f"MONGODB_URI is not a MongoDB connection string ({exc}): fix MONGODB_URI"
        ) from None
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        raise StartupError(
            f"cannot reach the database at {redacted(uri)} ({_first_words(exc)}): start it, "
            "or fix MONGODB_URI"
        ) from None
    finally:
        client.close()


def _first_words(error: Exception) -> str:
    """The driver's reason without its topology dump."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    for cut in (" (configured timeouts", ", Timeout:", ", Topology Description"):
        text = text.split(cut, 1)[0]
    return text[:200]
