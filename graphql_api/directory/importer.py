"""`messager import FILE.json`: create or update a directory, idempotently, by `key` (SPEC §10).

The whole file is checked first, every entry and every reference (against the file and what the
database already holds), and nothing is written unless all of it is valid; errors name the entry
(`users[2] (key 'bob'): ...`). Writes are upserts keyed by `key`, so running the same file twice
changes nothing and an interrupted import is completed by running it again.

Keys are unique per kind within a file (the printed id maps are keyed by them); a company or user
key is scoped to its firm in the database. A user entry's `favorites`, when present, replace the
user's favorites; when absent, the favorites the user chose in the product are kept (minus, for a
client, companies it no longer belongs to). `locale` ("en" or "fr") is the language of the user's
emails; when absent, the stored one is kept (English for a new user).

Compliance (SPEC §17): a practitioner entry's `admin` (default false) makes it an admin of its
firm; a firm's `retentionYears` (absent: keep forever) is how long a conversation is kept after
its last activity; a company's `legalHold` (default false) keeps its conversations past retention.
Each is written as the file says, so removing it from the file clears it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pymongo import UpdateOne

from graphql_api.database import Db, Document
from graphql_api.directory.models import DEFAULT_LOCALE
from graphql_api.ids import new_id

Key = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
    ),
]


class ImportFileError(ValueError):
    """The file is not a valid directory; `problems` lists each bad entry."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid directory file:\n  " + "\n  ".join(problems))
        self.problems = problems


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FirmEntry(_Entry):
    key: Key
    name: Name
    retentionYears: int | None = Field(default=None, ge=1, le=100)  # as named in the file


class CompanyEntry(_Entry):
    key: Key
    firm: Key
    name: Name
    legalHold: bool = False  # named as in the file, like every field


class UserEntry(_Entry):
    key: Key
    firm: Key
    kind: Literal["PRACTITIONER", "CLIENT"]
    name: Name
    email: Email
    companies: list[Key] = Field(default_factory=list)
    favorites: list[Key] | None = None
    locale: Literal["en", "fr"] | None = None
    """The language of the user's emails; absent: kept as it is (English for a new user)."""
    admin: bool = False
    """An admin of its firm (practitioners only): reads the audit log, exports client files."""


_SECTIONS: dict[str, type[_Entry]] = {
    "firms": FirmEntry,
    "companies": CompanyEntry,
    "users": UserEntry,
}


def _label(section: str, index: int, raw: object) -> str:
    key = raw.get("key") if isinstance(raw, dict) else None
    return f"{section}[{index}]" + (f" (key {key!r})" if isinstance(key, str) else "")


def parse_directory(data: object) -> dict[str, list[Any]]:
    """Validate the shape of every entry; raise `ImportFileError` listing every bad one."""
    if not isinstance(data, dict):
        raise ImportFileError(["the file must hold a JSON object with firms, companies, users"])
    problems = [f"unknown section {name!r}" for name in data if name not in _SECTIONS]
    parsed: dict[str, list[Any]] = {}
    for section, model in _SECTIONS.items():
        raw_entries = data.get(section, [])
        if not isinstance(raw_entries, list):
            problems.append(f"{section} must be a list")
            continue
        parsed[section] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_entries):
            label = _label(section, index, raw)
            try:
                entry = model.model_validate(raw)
            except ValidationError as exc:
                for err in exc.errors():
                    where = ".".join(str(part) for part in err["loc"]) or "entry"
                    problems.append(f"{label}: {where}: {err['msg']}")
                continue
            if entry.key in seen:
                problems.append(f"{label}: duplicate key {entry.key!r} in {section}")
            seen.add(entry.key)
            parsed[section].append(entry)
    if problems:
        raise ImportFileError(problems)
    return parsed


class _Plan:
    """Resolved ids and the problems found while resolving references."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.firm_ids: dict[str, str] = {}
        self.company_ids: dict[tuple[str, str], str] = {}


async def import_directory(db: Db, data: object) -> dict[str, dict[str, str]]:
    """Import a parsed JSON document; answer the `{"users","companies","firms"}` id maps."""
    entries = parse_directory(data)
    firms: list[FirmEntry] = entries["firms"]
    companies: list[CompanyEntry] = entries["companies"]
    users: list[UserEntry] = entries["users"]
    plan = _Plan()

    # Firms: ids of existing ones, fresh ids for new ones.
    firm_keys = {f.key for f in firms} | {c.firm for c in companies} | {u.firm for u in users}
    async for doc in db.firms.find({"key": {"$in": sorted(firm_keys)}}, {"key": 1}):
        plan.firm_ids[doc["key"]] = doc["_id"]
    for firm in firms:
        plan.firm_ids.setdefault(firm.key, new_id())

    # Companies: each must name a known firm.
    for index, company in enumerate(companies):
        firm_id = plan.firm_ids.get(company.firm)
        if firm_id is None:
            plan.problems.append(
                f"companies[{index}] (key {company.key!r}): unknown firm {company.firm!r}"
            )
    existing_companies = await db.companies.find(
        {"firm_id": {"$in": list(plan.firm_ids.values())}}, {"firm_id": 1, "key": 1}
    ).to_list()
    for doc in existing_companies:
        plan.company_ids[(doc["firm_id"], doc["key"])] = doc["_id"]
    for company in companies:
        if company.firm in plan.firm_ids:
            plan.company_ids.setdefault((plan.firm_ids[company.firm], company.key), new_id())

    user_docs = await _plan_users(db, users, plan)
    if plan.problems:
        raise ImportFileError(plan.problems)

    # Everything is valid: write, parents first.
    if firms:
        await db.firms.bulk_write(
            [
                UpdateOne(
                    {"key": f.key},
                    {
                        "$set": {"name": f.name, "retention_years": f.retentionYears},
                        "$setOnInsert": {"_id": plan.firm_ids[f.key]},
                    },
                    upsert=True,
                )
                for f in firms
            ]
        )
    if companies:
        await db.companies.bulk_write(
            [
                UpdateOne(
                    {"firm_id": plan.firm_ids[c.firm], "key": c.key},
                    {
                        "$set": {
                            "name": c.name,
                            "name_lower": c.name.casefold(),
                            "legal_hold": c.legalHold,
                        },
                        "$setOnInsert": {"_id": plan.company_ids[(plan.firm_ids[c.firm], c.key)]},
                    },
                    upsert=True,
                )
                for c in companies
            ]
        )
    if user_docs:
        await db.users.bulk_write(
            [
                UpdateOne(
                    {"firm_id": doc["firm_id"], "key": doc["key"]},
                    {
                        "$set": {k: v for k, v in doc.items() if k != "_id"},
                        "$setOnInsert": {"_id": doc["_id"]},
                    },
                    upsert=True,
                )
                for doc in user_docs
            ]
        )
    return {
        "users": {doc["key"]: str(doc["_id"]) for doc in user_docs},
        "companies": {
            c.key: str(plan.company_ids[(plan.firm_ids[c.firm], c.key)]) for c in companies
        },
        "firms": {f.key: str(plan.firm_ids[f.key]) for f in firms},
    }


async def _plan_users(db: Db, users: list[UserEntry], plan: _Plan) -> list[Document]:
    """Resolve each user's references; answer the documents to write."""
    existing = {
        (doc["firm_id"], doc["key"]): doc
        async for doc in db.users.find({"firm_id": {"$in": list(plan.firm_ids.values())}})
    }
    emails_in_db = {
        doc["email"]: (doc["firm_id"], doc["key"])
        async for doc in db.users.find(
            {"email": {"$in": [u.email for u in users]}}, {"email": 1, "firm_id": 1, "key": 1}
        )
    }
    seen_emails: dict[str, str] = {}
    docs: list[Document] = []
    for index, user in enumerate(users):
        label = f"users[{index}] (key {user.key!r})"
        problems_before = len(plan.problems)
        firm_id = plan.firm_ids.get(user.firm)
        if firm_id is None:
            plan.problems.append(f"{label}: unknown firm {user.firm!r}")
            continue
        if user.email in seen_emails:
            plan.problems.append(
                f"{label}: email {user.email!r} is also used by user {seen_emails[user.email]!r}"
            )
        seen_emails[user.email] = user.key
        owner = emails_in_db.get(user.email)
        if owner is not None and owner != (firm_id, user.key):
            plan.problems.append(f"{label}: email {user.email!r} belongs to another user")

        def resolve(
            keys: list[str], field: str, label: str = label, firm_id: str = firm_id
        ) -> list[str]:
            ids = []
            for key in dict.fromkeys(keys):
                company_id = plan.company_ids.get((firm_id, key))
                if company_id is None:
                    plan.problems.append(f"{label}: {field}: unknown company {key!r} in its firm")
                else:
                    ids.append(company_id)
            return ids

        company_ids = resolve(user.companies, "companies")
        if user.kind == "PRACTITIONER" and user.companies:
            plan.problems.append(f"{label}: companies: only clients belong to companies")
        if user.kind == "CLIENT" and user.admin:
            plan.problems.append(f"{label}: admin: only practitioners may be admins")
        previous = existing.get((firm_id, user.key))
        if user.favorites is not None:
            favorite_ids = resolve(user.favorites, "favorites")
            if user.kind == "CLIENT":
                for key in dict.fromkeys(user.favorites):
                    fav_id = plan.company_ids.get((firm_id, key))
                    if fav_id is not None and fav_id not in company_ids:
                        plan.problems.append(
                            f"{label}: favorites: a client may only favorite its own companies "
                            f"({key!r} is not one)"
                        )
        else:
            favorite_ids = list(previous.get("favorite_company_ids", [])) if previous else []
            if user.kind == "CLIENT":
                favorite_ids = [fav for fav in favorite_ids if fav in company_ids]
        if len(plan.problems) > problems_before:
            continue
        docs.append(
            {
                "_id": previous["_id"] if previous else new_id(),
                "firm_id": firm_id,
                "key": user.key,
                "kind": user.kind,
                "name": user.name,
                "name_lower": user.name.casefold(),
                "email": user.email,
                "company_ids": company_ids,
                "favorite_company_ids": favorite_ids,
                "locale": user.locale or (previous or {}).get("locale") or DEFAULT_LOCALE,
                "admin": user.admin,
            }
        )
    return docs
