"""Typed records of the directory's MongoDB documents.

Documents are `firms {_id, key, name}`, `companies {_id, firm_id, key, name, name_lower}` and
`users {_id, firm_id, key, kind, name, name_lower, email, company_ids, favorite_company_ids,
locale, notification_settings, admin}` (locale and settings for emails, `graphql_api.email`;
`admin` for compliance, `graphql_api.compliance`). Firms may carry `retention_years` and
companies `legal_hold` (the retention job, `graphql_api.compliance.retention`). A user being
erased (`erasing`) is no user any more: it is read as absent (`graphql_api.compliance.erasure`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from graphql_api.database import Document

LOCALES = ("en", "fr")
DEFAULT_LOCALE = "en"


class UserKind(enum.StrEnum):
    PRACTITIONER = "PRACTITIONER"
    CLIENT = "CLIENT"


@dataclass(frozen=True, slots=True)
class Company:
    id: str
    firm_id: str
    key: str
    name: str

    @classmethod
    def from_doc(cls, doc: Document) -> Company:
        return cls(id=doc["_id"], firm_id=doc["firm_id"], key=doc.get("key", ""), name=doc["name"])


@dataclass(frozen=True, slots=True)
class User:
    """A user as stored; the viewer of a request is one of these, loaded fresh per request."""

    id: str
    firm_id: str
    key: str
    kind: UserKind
    name: str
    email: str
    company_ids: frozenset[str]
    favorite_company_ids: frozenset[str]
    locale: str = DEFAULT_LOCALE
    """The language of the emails the user receives: "en" or "fr"."""
    is_admin: bool = False
    """An admin of its firm (SPEC §17): a practitioner with `"admin": true` in the import."""

    @property
    def is_practitioner(self) -> bool:
        return self.kind is UserKind.PRACTITIONER

    @property
    def is_client(self) -> bool:
        return self.kind is UserKind.CLIENT

    @classmethod
    def from_doc(cls, doc: Document) -> User:
        return cls(
            id=doc["_id"],
            firm_id=doc["firm_id"],
            key=doc.get("key", ""),
            kind=UserKind(doc["kind"]),
            name=doc["name"],
            email=doc["email"],
            company_ids=frozenset(doc.get("company_ids", ())),
            favorite_company_ids=frozenset(doc.get("favorite_company_ids", ())),
            locale=doc.get("locale") if doc.get("locale") in LOCALES else DEFAULT_LOCALE,
            # The embedded server answers a stored `true` as 1.
            is_admin=bool(doc.get("admin")) and doc["kind"] == UserKind.PRACTITIONER.value,
        )


FORMER_USER_NAME = "Former user"


def former_user(user_id: str, firm_id: str) -> User:
    """Who an author or participant removed from the directory since is shown as: their
    messages stay readable, their name and address do not."""
    return User(
        id=user_id,
        firm_id=firm_id,
        key="",
        kind=UserKind.PRACTITIONER,
        name=FORMER_USER_NAME,
        email="",
        company_ids=frozenset(),
        favorite_company_ids=frozenset(),
    )
