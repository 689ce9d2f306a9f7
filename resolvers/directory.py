"""Resolvers of the directory part of the contract: viewer, companies and favorites."""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from schema.directory_types import CompanyType, UserType


def viewer(info: Info) -> UserType:
    return UserType(record=info.context.viewer)


async def companies(
    info: Info, search: str | None = None, favorites_only: bool | None = False
) -> list[CompanyType]:
    found = await info.context.services.directory.companies(
        info.context.viewer, search=search, favorites_only=bool(favorites_only)
    )
    return [CompanyType(record=c) for c in found]


async def add_favorite_company(info: Info, company_id: strawberry.ID) -> CompanyType:
    company, viewer = await info.context.services.directory.add_favorite(
        info.context.viewer, company_id
    )
    info.context.replace_viewer(viewer)
    return CompanyType(record=company)


async def remove_favorite_company(info: Info, company_id: strawberry.ID) -> CompanyType:
    company, viewer = await info.context.services.directory.remove_favorite(
        info.context.viewer, company_id
    )
    info.context.replace_viewer(viewer)
    return CompanyType(record=company)
