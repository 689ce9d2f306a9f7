"""The contract's enums (SPEC §9)."""

from __future__ import annotations

import strawberry

from graphql_api.directory.models import UserKind as DomainUserKind

UserKind = strawberry.enum(DomainUserKind, name="UserKind")
