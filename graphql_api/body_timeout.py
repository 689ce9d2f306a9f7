"""A minimum rate for receiving a request's body (issue 20, finding 6).

aiohttp closes a connection whose headers are slow (its keep-alive timeout), but a body may
trickle in forever: one byte every 5 s held a connection, a handler and its buffers without
end. Here a body must keep arriving: in every `window_seconds` until it is complete, at least
`min_rate` bytes a second of it (or its rest, when less is left). A normal upload is far above
that (100 MiB at 1 MB/s gets 2,000 times what it needs), a silent or trickling body falls under
it within one window, however fast it started. Past that the handler is cancelled (an upload
then removes what it stored), and the client gets 408 with a JSON body, on a connection that
closes.

One timer per request with a body, every window, until the body is complete: what the handler
does once it has the whole body is bounded elsewhere (the GraphQL request deadline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def body_timeout_middleware(window_seconds: float, min_rate: float) -> Middleware:
    """A middleware requiring every request body to arrive at `min_rate` bytes a second or
    more, over each `window_seconds`."""
    wanted_per_window = min_rate * window_seconds

    @web.middleware
    async def body_timeout(request: web.Request, handler: Handler) -> web.StreamResponse:
        content = request.content
        if not request.body_exists or content.is_eof():
            return await handler(request)
        loop = asyncio.get_running_loop()
        timer: asyncio.TimerHandle | None = None
        received = 0
        try:
            async with asyncio.timeout(None) as deadline:

                def check() -> None:
                    nonlocal timer, received
                    if content.is_eof():
                        return  # complete: what the handler does next is not bounded here
                    if content.total_bytes - received < wanted_per_window:
                        deadline.reschedule(loop.time())  # cancels the handler now
                        return
                    received = content.total_bytes
                    timer = loop.call_later(window_seconds, check)

                timer = loop.call_later(window_seconds, check)
                return await handler(request)
        except TimeoutError:
            if not deadline.expired():
                raise
        finally:
            if timer is not None:
                timer.cancel()
        response = web.json_response(
            {
                "error": {
                    "code": "REQUEST_TIMEOUT",
                    "message": "the request body arrived too slowly: send at least "
                    f"{min_rate:g} bytes a second (measured over {window_seconds:g} s)",
                }
            },
            status=408,
        )
        response.force_close()  # the rest of the body may still be on its way
        return response

    return body_timeout
