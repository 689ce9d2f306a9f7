"""Graceful shutdown that lets a request finish receiving its body.

On SIGTERM aiohttp marks every connection as closing (`pre_shutdown`, then `shutdown`) and from
then on its `RequestHandler.data_received` drops every incoming byte, even the rest of the body
of a request that is being handled. An upload half sent when the signal lands then waits for
bytes that never come until the shutdown grace ends, and the client sees a disconnect instead of
its 201. `DrainingRequestHandler` keeps feeding the request in progress; the connection still
closes once its answer is sent, and new requests are still refused.
"""

from __future__ import annotations

from aiohttp import web_protocol, web_server


class DrainingRequestHandler(web_protocol.RequestHandler):
    def data_received(self, data: bytes) -> None:
        closing = (self._close, self._force_close)
        # Plain requests only: an upgraded WebSocket is being closed with 1001 and must not
        # go on starting subscriptions during the grace.
        in_body = self._request_in_progress and not self._upgraded
        if any(closing) and in_body and self.transport is not None:
            self._close = self._force_close = False
            try:
                super().data_received(data)
            finally:
                # Whatever the bytes held, the connection stays marked for closing.
                self._close = self._close or closing[0]
                self._force_close = self._force_close or closing[1]
            return
        super().data_received(data)


def install() -> None:
    """Make the servers this process starts use `DrainingRequestHandler`. aiohttp offers no
    option for the handler class: `web_server.Server` builds its connections from this name."""
    web_server.RequestHandler = DrainingRequestHandler  # type: ignore[misc]
