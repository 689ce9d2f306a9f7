"""Reading the directory and changing favorites, always within the viewer's firm.

Which companies a viewer sees is the policy's rule (`policy.can_see_company` and its filter); a
company the viewer cannot see answers NOT_FOUND, exactly like an unknown id.

The viewer of every request is read through the process's user cache (`current_user`, see
`user_cache.py`); the favorites mutations evict their user from it as soon as they have written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from pymongo import ReturnDocument

from graphql_api.database import Db, Document
from graphql_api.directory.models import Company, User
from graphql_api.directory.user_cache import CompanyCache, UserCache
from graphql_api.errors import BadUserInput, NotFound
from graphql_api.policy import visible_companies_filter
from graphql_api.text import require_unicode

MAX_SEARCH_LENGTH = 100


def search_filter(field: str, search: str | None) -> Document:
    """A case-insensitive substring match on `field`; the search text is never a pattern."""
    if search is None or not search.strip():
        return {}
    text = search.strip()
    require_unicode(text, "search")
    if len(text) > MAX_SEARCH_LENGTH:
        raise BadUserInput(f"search must be at most {MAX_SEARCH_LENGTH} characters")
    return {field: {"$regex": re.escape(text), "$options": "i"}}


def _present(doc: Document | None) -> bool:
    """Whether a user document is a user: a user being erased is gone already (its tokens fail,
    it shows as "Former user"), while the erasure finishes (`graphql_api.compliance.erasure`)."""
    return doc is not None and not doc.get("erasing")


class Directory:
    """Directory reads and favorite changes for one database."""

    def __init__(
        self,
        db: Db,
        on_user_changed: Callable[[str], None] | None = None,
        cached_users: int = 0,
    ) -> None:
        self.db = db
        self.cache = UserCache(self.user_by_id, max_users=cached_users, load_many=self.users_by_ids)
        self.company_cache = CompanyCache(
            self._company_by_id, max_users=cached_users, load_many=self.companies_by_ids
        )
        # Live subscriptions re-check access with the new favorites at once (the change stream
        # tells the other processes).
        self._on_user_changed = on_user_changed

    async def current_user(self, user_id: str) -> User | None:
        """The user as stored now, from the cache when it may serve (no database command)."""
        return await self.cache.get(user_id)

    async def user_by_id(self, user_id: str) -> User | None:
        """The user as stored, read from the database."""
        doc = await self.db.users.find_one({"_id": user_id})
        return User.from_doc(doc) if _present(doc) else None

    async def user_by_email(self, email: str) -> User | None:
        doc = await self.db.users.find_one({"email": email.strip().lower()})
        return User.from_doc(doc) if _present(doc) else None

    async def current_users(self, ids: Iterable[str]) -> dict[str, User]:
        """The users as stored now, from the cache when it may serve: what the schema shows
        of authors and participants (one command for those not kept, none on a warm process)."""
        wanted = list(dict.fromkeys(ids))
        found = await self.cache.get_many(wanted)
        return {user.id: user for user in found if user is not None}

    async def users_by_ids(self, ids: Iterable[str]) -> dict[str, User]:
        docs = await self.db.users.find({"_id": {"$in": list(ids)}}).to_list()
        return {doc["_id"]: User.from_doc(doc) for doc in docs if _present(doc)}

    async def current_companies(self, ids: Iterable[str]) -> dict[str, Company]:
        """The companies as stored now, from the cache when it may serve (no command on a warm
        process)."""
        found = await self.company_cache.get_many(list(dict.fromkeys(ids)))
        return {company.id: company for company in found if company is not None}

    async def _company_by_id(self, company_id: str) -> Company | None:
        return (await self.companies_by_ids([company_id])).get(company_id)

    async def companies_by_ids(self, ids: Iterable[str]) -> dict[str, Company]:
        docs = await self.db.companies.find({"_id": {"$in": list(ids)}}).to_list()
        return {doc["_id"]: Company.from_doc(doc) for doc in docs}

    async def companies(
        self, viewer: User, search: str | None = None, favorites_only: bool = False
    ) -> list[Company]:
        """The companies the viewer may pick, by name."""
        query = {**visible_companies_filter(viewer), **search_filter("name", search)}
        docs = await self.db.companies.find(query).sort("name_lower", 1).to_list()
        companies = [Company.from_doc(doc) for doc in docs]
        if favorites_only:
            companies = [c for c in companies if c.id in viewer.favorite_company_ids]
        return companies

    async def add_favorite(self, viewer: User, company: Company) -> User:
        """Add `company` (one the policy lets the viewer see) to the viewer's favorites."""
        return await self._update_favorites(
            viewer, {"$addToSet": {"favorite_company_ids": company.id}}
        )

    async def remove_favorite(self, viewer: User, company: Company) -> User:
        return await self._update_favorites(viewer, {"$pull": {"favorite_company_ids": company.id}})

    async def _update_favorites(self, viewer: User, update: Document) -> User:
        try:
            doc = await self.db.users.find_one_and_update(
                {"_id": viewer.id}, update, return_document=ReturnDocument.AFTER
            )
        finally:
            # Even when the answer was lost: the write may have happened.
            self.cache.evict(viewer.id)
        if doc is None:  # deleted while the request ran
            raise NotFound("user not found")
        if self._on_user_changed is not None:
            self._on_user_changed(viewer.id)
        return User.from_doc(doc)
