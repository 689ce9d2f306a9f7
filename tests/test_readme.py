"""The README's GraphQL operations paste into GraphiQL as they are: every block is valid against
the schema, every operation is named (GraphiQL refuses an anonymous operation beside others),
and the variables shown beside them are what the operations declare."""

from __future__ import annotations

import json
import re
from pathlib import Path

from graphql import OperationDefinitionNode, parse, validate

from schema.schema import schema

README = Path(__file__).parent.parent / "README.md"
BLOCK = re.compile(r"```(graphql|json)\n(.*?)```", re.DOTALL)
TABLE_OPERATION = re.compile(r"^\| `((?:query|mutation|subscription) [^`]+)` \| (.+) \|$", re.M)


def blocks(kind: str) -> list[str]:
    return [body for language, body in BLOCK.findall(README.read_text()) if language == kind]


def operations(document: str) -> list[OperationDefinitionNode]:
    return [d for d in parse(document).definitions if isinstance(d, OperationDefinitionNode)]


def test_every_graphql_block_of_the_readme_is_valid_and_its_operations_named():
    graphql_blocks = blocks("graphql")
    assert len(graphql_blocks) >= 4
    for block in graphql_blocks:
        assert validate(schema._schema, parse(block)) == [], block
        assert all(op.name is not None for op in operations(block)), block


def test_the_readme_operations_pasted_into_one_tab_still_validate():
    names = [op.name.value for block in blocks("graphql") for op in operations(block)]
    assert len(names) == len(set(names)), names  # one GraphiQL tab can hold them all
    assert validate(schema._schema, parse("\n".join(blocks("graphql")))) == []


def test_the_frontend_table_operations_are_valid_with_the_variables_shown():
    rows = TABLE_OPERATION.findall(README.read_text())
    assert len(rows) >= 5
    for document, variables in rows:
        assert validate(schema._schema, parse(document)) == [], document
        (operation,) = operations(document)
        declared = {v.variable.name.value for v in operation.variable_definitions or ()}
        shown = set() if variables == "none" else set(json.loads(variables.strip("`")))
        assert shown == declared, (document, variables)


def test_the_readme_links_nothing_outside_the_repository():
    text = README.read_text()
    assert "../" not in text
    for target in re.findall(r"\]\(([^)#]+)", text):
        assert (README.parent / target).exists(), target


def test_every_json_block_of_the_readme_parses():
    json_blocks = blocks("json")
    assert json_blocks
    for block in json_blocks:
        json.loads(block)
