"""Resolvers of the directory part of the contract: viewer, companies and favorites."""

from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.directory.models import Company as CompanyRecord
from graphql_api.errors import NotFound
from schema.directory_types import Company, User


def viewer(info: Info) -> User:
    return User(record=info.context.viewer)


async def companies(
    info: Info, search: str | None = None, favorites_only: bool | None = False
) -> list[Company]:
    found = await info.context.services.directory.companies(
        info.context.viewer, search=search, favorites_only=bool(favorites_only)
    )
    return [Company(record=c) for c in found]


async def _visible(info: Info, company_id: strawberry.ID) -> CompanyRecord:
    found = await info.context.visible_company(company_id)
    if found is None:
        raise NotFound("company not found")
    return found


async def add_favorite_company(info: Info, company_id: strawberry.ID) -> Company:
    company = await _visible(info, company_id)
    viewer = await info.context.services.directory.add_favorite(info.context.viewer, company)
    info.context.replace_viewer(viewer)
    return Company(record=company)


async def remove_favorite_company(info: Info, company_id: strawberry.ID) -> Company:
    company = await _visible(info, company_id)
    viewer = await info.context.services.directory.remove_favorite(info.context.viewer, company)
    info.context.replace_viewer(viewer)
    return Company(record=company)
