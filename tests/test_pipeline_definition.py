"""dvc.yaml is complete: each stage depends on every gan/ module it imports, and on params.yaml keys that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from gan.config import Config, flatten, load_params

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _module_file(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _gan_imports(path: Path) -> set[str]:
    """gan modules `path` imports anywhere; in gan/config.py also registries named as strings."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "gan"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "gan":
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if _module_file(f"{node.module}.{a.name}")}
        elif path.name == "config.py" and isinstance(node, ast.Constant) and isinstance(node.value, str):
            # registries named as "gan.module:ATTR" strings (gan/config.py) are imports too
            match = re.fullmatch(r"(gan(?:\.\w+)+):\w+", node.value)
            if match:
                found.add(match.group(1))
    return found


def _closure(script: Path) -> set[Path]:
    """Every gan/ source file a stage script imports, directly or through other gan modules."""
    todo, seen = [script], set()
    while todo:
        for name in _gan_imports(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing gan.a.b runs gan/__init__ and gan/a/__init__
                file = _module_file(".".join(parts[:i]))
                if file and file not in seen:
                    seen.add(file)
                    todo.append(file)
    return seen


@pytest.mark.parametrize("stage", sorted(DVC["stages"]))
def test_stage_deps_cover_every_imported_gan_module(stage):
    spec = DVC["stages"][stage]
    script = ROOT / "stages" / f"{stage}.py"
    deps = [d if isinstance(d, str) else next(iter(d)) for d in spec["deps"]]
    assert f"stages/{stage}.py" in deps
    missing = []
    for file in sorted(_closure(script)):
        rel = file.relative_to(ROOT).as_posix()
        if rel == "gan/__init__.py":
            continue  # the version string only
        if not any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps):
            missing.append(rel)
    assert not missing, f"stage {stage} imports {missing} but dvc.yaml does not list them as deps"


@pytest.mark.parametrize("stage", sorted(DVC["stages"]))
def test_stage_params_name_existing_keys(stage):
    keys = set(flatten(Config().to_dict()))
    sections = {k.split(".")[0] for k in keys}
    for param in DVC["stages"][stage].get("params", []):
        assert param in keys or param in sections, f"{stage} lists unknown param {param}"


def test_shipped_params_file_is_valid_and_complete():
    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert set(flatten(shipped)) == set(flatten(Config().to_dict())), "params.yaml must list every key"
    assert load_params(ROOT / "params.yaml") == Config(), "params.yaml and the dataclass defaults disagree"
