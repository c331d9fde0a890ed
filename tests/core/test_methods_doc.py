"""docs/methods.md names the function behind every method step: each `path.py::name` it cites must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`([\w/]+\.py)::([\w.]+)`")


def defined_names(path: Path) -> set[str]:
    """Top-level names of a module, and `Class.method` for the methods of its classes."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names.update(f"{node.name}.{item.name}" for item in node.body
                             if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def test_every_function_that_docs_methods_cites_exists():
    text = (REPO_ROOT / "docs" / "methods.md").read_text(encoding="utf-8")
    references = REFERENCE.findall(text)
    assert len(references) > 50
    missing = [f"{path}::{name}" for path, name in references
               if not (REPO_ROOT / path).is_file() or name not in defined_names(REPO_ROOT / path)]
    assert missing == []
