"""Typed keys of what the aiohttp application and its requests hold."""

from __future__ import annotations

import asyncio
import weakref

from aiohttp import web

from graphql_api.readiness import Readiness
from graphql_api.services import Services
from graphql_api.settings import Settings

SERVICES = web.AppKey("services", Services)
SETTINGS = web.AppKey("settings", Settings)
LISTENERS = web.AppKey("mongo_listeners", tuple)
READINESS = web.AppKey("readiness", Readiness)
REQUEST_ID = web.RequestKey("request_id", str)
WS_INITIALIZED = web.RequestKey("ws_initialized", asyncio.Event)
WEBSOCKETS = web.AppKey("websockets", weakref.WeakSet)
REUSE_PORT = web.AppKey("reuse_port", bool)
"""Workers of `serve --workers N` share their ports (the SMTP listener's too)."""
