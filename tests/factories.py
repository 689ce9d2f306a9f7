"""A standard two-firm directory for tests, imported through the real importer.

Firm `acme` has practitioners alice (favorites: bakery) and paul (no favorites), clients bob
(bakery; favorite bakery), carla (bakery; no favorites) and dan (garage and florist; favorite
garage). Firm `other` has practitioner olga (favorite rival) and client oscar (rival).
"""

from __future__ import annotations

from typing import Any

STANDARD_DIRECTORY: dict[str, list[dict[str, Any]]] = {
    "firms": [{"key": "acme", "name": "Acme Accounting"}, {"key": "other", "name": "Other Firm"}],
    "companies": [
        {"key": "bakery", "firm": "acme", "name": "Martin Bakery"},
        {"key": "garage", "firm": "acme", "name": "Garage Dupont"},
        {"key": "florist", "firm": "acme", "name": "Fleurs de Lys"},
        {"key": "rival", "firm": "other", "name": "Rival Bakery"},
    ],
    "users": [
        {
            "key": "alice",
            "firm": "acme",
            "kind": "PRACTITIONER",
            "name": "Alice Roy",
            "email": "alice@acme.test",
            "favorites": ["bakery"],
        },
        {
            "key": "paul",
            "firm": "acme",
            "kind": "PRACTITIONER",
            "name": "Paul Girard",
            "email": "paul@acme.test",
            "favorites": [],
        },
        {
            "key": "bob",
            "firm": "acme",
            "kind": "CLIENT",
            "name": "Bob Martin",
            "email": "bob@bakery.test",
            "companies": ["bakery"],
            "favorites": ["bakery"],
        },
        {
            "key": "carla",
            "firm": "acme",
            "kind": "CLIENT",
            "name": "Carla Martin",
            "email": "carla@bakery.test",
            "companies": ["bakery"],
            "favorites": [],
        },
        {
            "key": "dan",
            "firm": "acme",
            "kind": "CLIENT",
            "name": "Dan Dupont",
            "email": "dan@garage.test",
            "companies": ["garage", "florist"],
            "favorites": ["garage"],
        },
        {
            "key": "olga",
            "firm": "other",
            "kind": "PRACTITIONER",
            "name": "Olga Other",
            "email": "olga@other.test",
            "favorites": ["rival"],
        },
        {
            "key": "oscar",
            "firm": "other",
            "kind": "CLIENT",
            "name": "Oscar Rival",
            "email": "oscar@rival.test",
            "companies": ["rival"],
            "favorites": ["rival"],
        },
    ],
}
