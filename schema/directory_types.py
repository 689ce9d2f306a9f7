"""`User` and `Company` as the contract shapes them (SPEC §9).

Both are seen relative to the viewer: `Company.isFavorite` is the viewer's favorite flag; what
another user's `companies` and `favoriteCompanies` show is the policy's rule
(`visible_company_ids_of`, `can_see_favorites_of`).
"""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.directory import models
from graphql_api.policy import can_see_favorites_of, visible_company_ids_of
from schema.enums import UserKind


@strawberry.type
class Company:
    record: strawberry.Private[models.Company]
    id: strawberry.ID
    name: str

    def __init__(self, record: models.Company) -> None:
        # Plain fields are attributes, read by graphql-core without a resolver call (issue 16).
        self.record = record
        self.id = strawberry.ID(str(record.id))
        self.name = record.name

    @strawberry.field(description="Whether the company is one of the viewer's favorites.")
    def is_favorite(self, info: Info) -> bool:
        return self.record.id in info.context.viewer.favorite_company_ids


@strawberry.type
class User:
    record: strawberry.Private[models.User]
    id: strawberry.ID
    name: str
    email: str
    kind: UserKind

    def __init__(self, record: models.User) -> None:
        # Plain fields are attributes, read by graphql-core without a resolver call (issue 16).
        self.record = record
        self.id = strawberry.ID(str(record.id))
        self.name = record.name
        self.email = record.email
        self.kind = record.kind

    @strawberry.field(
        description="The companies the user is a client of (none for a practitioner)."
    )
    async def companies(self, info: Info) -> list[Company]:
        return await _load_companies(info, visible_company_ids_of(info.context.viewer, self.record))

    @strawberry.field(description="The user's favorite companies; only the viewer's own are shown.")
    async def favorite_companies(self, info: Info) -> list[Company]:
        if not can_see_favorites_of(info.context.viewer, self.record):
            return []
        return await _load_companies(info, self.record.favorite_company_ids)


async def _load_companies(info: Info, ids: frozenset) -> list[Company]:
    found = await info.context.loaders.companies.load_many(sorted(ids))
    companies = [c for c in found if c is not None]
    return [Company(record=c) for c in sorted(companies, key=lambda c: c.name.casefold())]
