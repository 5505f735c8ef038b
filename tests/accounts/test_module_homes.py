"""The token UI has one home and its imports run one way (issue 17)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imports_of(relative: str) -> set[str]:
    tree = ast.parse((ROOT / relative).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_account_page_does_not_import_the_token_views():
    imported = imports_of("accounts/views_account.py")
    assert not {name for name in imported if "views_tokens" in name}
    assert "accounts.views_account" in imports_of("accounts/views_tokens.py")


def test_the_token_ui_is_not_in_the_api_app():
    assert not (ROOT / "api" / "views_tokens.py").exists()
