"""What `/readyz` reports besides the database's answer: start-up work not finished yet.

A part of the start-up (the collections and indexes, the change streams) reports a problem under
its own name while it is not done, and clears it once it is; `/readyz` answers 503 with every
open problem, so a load balancer sends no traffic to a process that cannot serve it fully yet.
"""

from __future__ import annotations


class Readiness:
    def __init__(self) -> None:
        self._problems: dict[str, str] = {}

    def problem(self, part: str, why: str) -> None:
        self._problems[part] = why

    def clear(self, part: str) -> None:
        self._problems.pop(part, None)

    @property
    def problems(self) -> dict[str, str]:
        return dict(self._problems)
