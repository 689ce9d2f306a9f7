"""`User` and `Company` as the contract shapes them (SPEC §9).

Both are seen relative to the viewer: `Company.isFavorite` is the viewer's favorite flag; another
user's `companies` are limited to companies the viewer may see, and another user's favorites are
private to that user (an empty list).
"""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.directory import models
from schema.enums import UserKind


@strawberry.type(name="Company")
class CompanyType:
    record: strawberry.Private[models.Company]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.id))

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field(description="Whether the company is one of the viewer's favorites.")
    def is_favorite(self, info: Info) -> bool:
        return self.record.id in info.context.viewer.favorite_company_ids


@strawberry.type(name="User")
class UserType:
    record: strawberry.Private[models.User]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return strawberry.ID(str(self.record.id))

    @strawberry.field
    def name(self) -> str:
        return self.record.name

    @strawberry.field
    def email(self) -> str:
        return self.record.email

    @strawberry.field
    def kind(self) -> UserKind:
        return self.record.kind

    @strawberry.field(
        description="The companies the user is a client of (none for a practitioner)."
    )
    async def companies(self, info: Info) -> list[CompanyType]:
        viewer = info.context.viewer
        ids = self.record.company_ids
        if viewer.is_client and viewer.id != self.record.id:
            ids = ids & viewer.company_ids  # clients never discover other client files
        return await _load_companies(info, ids)

    @strawberry.field(description="The user's favorite companies; only the viewer's own are shown.")
    async def favorite_companies(self, info: Info) -> list[CompanyType]:
        if info.context.viewer.id != self.record.id:
            return []
        return await _load_companies(info, self.record.favorite_company_ids)


async def _load_companies(info: Info, ids: frozenset) -> list[CompanyType]:
    found = await info.context.loaders.companies.load_many(sorted(ids))
    companies = [c for c in found if c is not None]
    return [CompanyType(record=c) for c in sorted(companies, key=lambda c: c.name.casefold())]
