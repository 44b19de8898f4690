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


def _readme_commands() -> list[str]:
    """The README's leading bash blocks: command 1 (run the pipeline), command 2 (run the tests)."""
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)[:2]


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    run_pipeline, run_tests = _readme_commands()
    assert run_pipeline.startswith("python3 -m venv .venv") and run_pipeline.endswith("&& dvc repro")
    assert run_tests.startswith("python3 -m venv .venv") and run_tests.endswith("&& pytest")
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert run_tests in ci, ".ci/run must run README command 2 exactly as written"


def test_telemetry_is_off_and_generated_files_are_ignored():
    dvc_config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"analytics\s*=\s*false", dvc_config)
    assert re.search(r"check_update\s*=\s*false", dvc_config)
    assert "MLFLOW_DISABLE_TELEMETRY=true" in (ROOT / ".ci" / "run").read_text()
    ignored = set((ROOT / ".gitignore").read_text().split())
    for generated in (".venv/", "/data/", "/models/", "/checkpoints/", "mlflow.db", "/mlruns/", "/mlartifacts/"):
        assert generated in ignored, f".gitignore must ignore {generated}"
