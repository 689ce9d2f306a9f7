"""The directory's root fields, composed into Query and Mutation by `schema.schema`."""

from __future__ import annotations

import strawberry

from resolvers import directory
from schema.directory_types import CompanyType, UserType


@strawberry.type
class DirectoryQuery:
    viewer: UserType = strawberry.field(
        resolver=directory.viewer, description="The authenticated user."
    )
    companies: list[CompanyType] = strawberry.field(
        resolver=directory.companies,
        description="Companies the viewer may pick: all of the firm's for a practitioner, "
        "its own for a client; `search` matches the name, case-insensitively.",
    )


@strawberry.type
class DirectoryMutation:
    add_favorite_company: CompanyType = strawberry.mutation(resolver=directory.add_favorite_company)
    remove_favorite_company: CompanyType = strawberry.mutation(
        resolver=directory.remove_favorite_company
    )
