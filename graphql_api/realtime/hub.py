"""The in-process hub: delivers each event to the subscribers of its topics.

Publishing never waits on a subscriber: each subscriber has a bounded queue, and a subscriber
whose queue is full is cut off (its connection is closed with `SLOW_CONSUMER_CLOSE_CODE`) instead
of slowing the others or growing memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable

from graphql_api.realtime.events import Event, Topic

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE_SIZE = 512
RECENT_EVENT_KEYS = 20_000
SLOW_CONSUMER_CLOSE_CODE = 1013  # "Try Again Later"
SLOW_CONSUMER_REASON = "subscriber too slow: events overflowed"


class Subscriber:
    """One subscription's mailbox."""

    def __init__(self, topics: Iterable[Topic], on_overflow: Callable[[], None] | None) -> None:
        self.topics = frozenset(topics)
        self.queue: asyncio.Queue[Event] = asyncio.Queue(SUBSCRIBER_QUEUE_SIZE)
        self.overflowed = False
        self._on_overflow = on_overflow

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("subscriber overflowed on %s; closing it", sorted(self.topics))
            if self._on_overflow is not None:
                self._on_overflow()

    async def next(self) -> Event:
        return await self.queue.get()


class EventHub:
    """Each event reaches this process twice when change streams run (once from the service
    that wrote it, at once; once from the change stream): the second is dropped by its key."""

    def __init__(self) -> None:
        self._subscribers: dict[Topic, set[Subscriber]] = defaultdict(set)
        self._seen: OrderedDict[str, None] = OrderedDict()

    def subscribe(
        self, topics: Iterable[Topic], on_overflow: Callable[[], None] | None = None
    ) -> Subscriber:
        subscriber = Subscriber(topics, on_overflow)
        for topic in subscriber.topics:
            self._subscribers[topic].add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self._leave(subscriber, subscriber.topics)

    def retopic(self, subscriber: Subscriber, topics: Iterable[Topic]) -> None:
        """Move a subscriber to `topics` (its favorites changed), keeping its queue: events of
        the topics it keeps are neither lost nor repeated."""
        new = frozenset(topics)
        self._leave(subscriber, subscriber.topics - new)
        for topic in new - subscriber.topics:
            self._subscribers[topic].add(subscriber)
        subscriber.topics = new

    def _leave(self, subscriber: Subscriber, topics: Iterable[Topic]) -> None:
        for topic in topics:
            listeners = self._subscribers.get(topic)
            if listeners is not None:
                listeners.discard(subscriber)
                if not listeners:
                    del self._subscribers[topic]

    def publish(self, event: Event) -> None:
        key = event.key()
        if key is not None:
            if key in self._seen:
                return
            self.remember(key)
        delivered: set[int] = set()
        for topic in event.topics():
            for subscriber in tuple(self._subscribers.get(topic, ())):
                if id(subscriber) not in delivered:
                    delivered.add(id(subscriber))
                    subscriber.offer(event)

    def remember(self, key: str) -> None:
        """Count the event of `key` as published (a state this process already knows)."""
        self._seen[key] = None
        if len(self._seen) > RECENT_EVENT_KEYS:
            self._seen.popitem(last=False)

    def has_seen(self, key: str) -> bool:
        """Whether the event of this key was published here already (a change stream's copy of
        this process's own write needs no re-read)."""
        return key in self._seen

    def has_listeners(self, topic: Topic) -> bool:
        return topic in self._subscribers

    def topics(self) -> list[Topic]:
        """Every topic with a subscriber in this process."""
        return list(self._subscribers)

    @property
    def subscriber_count(self) -> int:
        return len({id(s) for listeners in self._subscribers.values() for s in listeners})
