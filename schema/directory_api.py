"""The directory's root fields, composed into Query and Mutation by `schema.schema`."""

from __future__ import annotations

import strawberry

from resolvers import directory
from schema.directory_types import Company, User
from schema.permissions import Authenticated, SeeCompany, VisibleCompanies, guarded


@strawberry.type
class DirectoryQuery:
    viewer: User = strawberry.field(
        resolver=directory.viewer,
        description="The authenticated user.",
        **guarded(Authenticated),
    )
    companies: list[Company] = strawberry.field(
        resolver=directory.companies,
        description="Companies the viewer may pick: all of the firm's for a practitioner, "
        "its own for a client; `search` matches the name, case-insensitively.",
        **guarded(VisibleCompanies),
    )


@strawberry.type
class DirectoryMutation:
    add_favorite_company: Company = strawberry.mutation(
        resolver=directory.add_favorite_company,
        description="Add a company the viewer may see to its favorites.",
        **guarded(SeeCompany),
    )
    remove_favorite_company: Company = strawberry.mutation(
        resolver=directory.remove_favorite_company,
        description="Remove a company from the viewer's favorites.",
        **guarded(SeeCompany),
    )
