"""The test suite's own layout rule: no test module imports another test module.

Shared test code lives in the helper modules (tests/*_helpers.py, tests/documents.py, ...), so a
test module can be read, run and changed on its own. This reads every tests/test_*.py with `ast`
and names each import of a `tests.test_*` module it finds.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent


def imported_modules(tree: ast.Module) -> list[str]:
    """Every module an `import` or `from ... import` of `tree` names, relative ones resolved
    against the tests package (`from .test_x import y` and `from . import test_x` included)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ("tests." if node.level else "") + (node.module or "")
            if node.module is None or base == "tests":
                found.extend(f"tests.{alias.name}" for alias in node.names)
            else:
                found.append(base)
    return found


def imports_of_test_modules(tests: Path) -> list[str]:
    """Each import of a `tests.test_*` module by a test module of `tests`, as "test_a.py imports
    tests.test_b"."""
    return [
        f"{path.name} imports {module}"
        for path in sorted(tests.glob("test_*.py"))
        for module in imported_modules(ast.parse(path.read_text(), filename=str(path)))
        if module.startswith("tests.test_")
    ]


def test_no_test_module_imports_another_test_module():
    assert imports_of_test_modules(TESTS) == []
