"""Which of this package's source files a module runs, and their digest.

A training checkpoint is resumed only under the same params, data *and code*: its fingerprint
holds the digest of every gan/ file that gan.training imports, directly or not. The same walk
over the imports is what tests/test_pipeline_definition.py holds dvc.yaml's deps to, so the
code a stage's DVC hash covers and the code its checkpoint key covers are one set.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "gan"
ROOT = Path(__file__).resolve().parents[1]  # the checkout this package was imported from


def _module_file(name: str, root: Path) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported_names(nodes: list[ast.AST], root: Path) -> set[str]:
    """Package modules imported anywhere in `nodes` (function bodies too), except in `if TYPE_CHECKING:`
    blocks, which run only under a type checker."""
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.If) and _is_type_checking(node):
            found |= _imported_names(node.orelse, root)
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == PACKAGE:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}", root)}
        found |= _imported_names(list(ast.iter_child_nodes(node)), root)
    return found


def imported_files(entry: Path, root: Path = ROOT) -> set[Path]:
    """Every package source file that running `entry` (a script or module file) imports, `entry` excluded.

    Importing gan.a.b runs gan/__init__.py and gan/a/__init__.py too, so those count.
    """
    todo, seen = [Path(entry)], set()
    while todo:
        for name in _imported_names(ast.parse(todo.pop().read_text()).body, root):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                file = _module_file(".".join(parts[:i]), root)
                if file and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return seen


def code_digest(module: str, root: Path = ROOT) -> str:
    """sha256 over the paths and bytes of `module`'s file and every package file it imports."""
    entry = _module_file(module, root)
    if entry is None:
        raise ValueError(f"no source file for module {module} under {root}")
    digest = hashlib.sha256()
    for file in sorted(imported_files(entry, root) | {entry}):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(file.read_bytes() + b"\0")
    return digest.hexdigest()
