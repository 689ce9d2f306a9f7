"""A PyMongo command listener that counts the commands a test cares about, on the app's own
client (`init_app(settings, mongo_listeners=[...])`)."""

from __future__ import annotations

from collections.abc import Callable

from pymongo import monitoring


class CountingListener(monitoring.CommandListener):
    """Counts started commands for which `wanted(event)` holds."""

    def __init__(self, wanted: Callable[[monitoring.CommandStartedEvent], bool]) -> None:
        self.wanted = wanted
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.wanted(event):
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass
