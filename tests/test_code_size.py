"""Every module of aerec_cli stays short enough to read whole, and every function short enough
to hold in mind: at most 600 lines a module, 80 a function (decorators not counted)."""

from __future__ import annotations

import ast

from tests.helpers import PACKAGE

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def oversized() -> list[str]:
    """'path: N lines' for each module over the limit, 'path:line name: N lines' per function."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(PACKAGE.parent).as_posix()
        if (lines := len(text.splitlines())) > MAX_MODULE_LINES:
            found.append(f"{where}: {lines} lines")
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    return found


def test_the_size_check_sees_the_package():
    assert (PACKAGE / "__init__.py").is_file()
    assert len(list(PACKAGE.rglob("*.py"))) > 10


def test_no_module_or_function_is_over_the_size_limits():
    assert oversized() == []
