"""The committed `schema.graphql` is the SDL of the code (SPEC §9): frontends read it."""

from pathlib import Path

from schema.schema import export_sdl

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "schema.graphql"


def test_committed_schema_file_matches_the_code():
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == export_sdl(), (
        "schema.graphql is out of date with the code: run `messager export-schema` "
        "(or `make schema`) and commit the result"
    )
