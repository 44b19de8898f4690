"""dvc.yaml is exact: each stage depends on the gan/ code it imports, no more and no less, and on params keys that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gan.config import Config, flatten, load_params
from gan.provenance import imported_files

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _listed_code(stage: str) -> set[str]:
    """The gan/ source files a stage's deps name; a folder stands for every .py file in it."""
    listed = set()
    for dep in DVC["stages"][stage]["deps"]:
        dep = dep if isinstance(dep, str) else next(iter(dep))
        if not dep.startswith("gan/"):
            continue
        path = ROOT / dep
        listed |= {f.relative_to(ROOT).as_posix() for f in path.glob("*.py")} if path.is_dir() else {dep}
    return listed


@pytest.mark.parametrize("stage", sorted(DVC["stages"]))
def test_stage_deps_are_exactly_the_gan_code_the_stage_imports(stage):
    """A missing dep leaves a stage stale after an edit; an extra one reruns it for nothing."""
    deps = [d if isinstance(d, str) else next(iter(d)) for d in DVC["stages"][stage]["deps"]]
    assert f"stages/{stage}.py" in deps
    imported = {f.relative_to(ROOT).as_posix() for f in imported_files(ROOT / "stages" / f"{stage}.py")}
    imported.discard("gan/__init__.py")  # the version string only
    listed = _listed_code(stage)
    assert not imported - listed, f"stage {stage} imports {sorted(imported - listed)} but dvc.yaml does not list them"
    assert not listed - imported, f"stage {stage} lists {sorted(listed - imported)} in dvc.yaml but never imports them"


@pytest.mark.parametrize("stage", sorted(DVC["stages"]))
def test_stage_deps_exist(stage):
    for dep in DVC["stages"][stage]["deps"]:
        dep = dep if isinstance(dep, str) else next(iter(dep))
        if dep.startswith(("gan/", "stages/")):
            assert (ROOT / dep).exists(), f"{stage} depends on {dep}, which does not exist"


def test_a_loss_model_or_augmentation_edit_reaches_only_train_generate_and_evaluate():
    """The issue's contract for which stages an edit of each kind of code reruns."""
    users = {name: {s for s in DVC["stages"] if name in _listed_code(s)}
             for name in ("gan/losses.py", "gan/augment.py", "gan/models/dcgan.py", "gan/metrics/kid.py",
                          "gan/metrics/frechet.py", "gan/data/datasets.py",
                          "gan/data/prepared.py", "gan/sources.py")}
    assert users["gan/losses.py"] == {"train"}
    assert users["gan/augment.py"] == {"features", "train"}  # DiffAugment, and the self-supervised views
    assert users["gan/models/dcgan.py"] == {"train", "generate", "evaluate"}
    assert users["gan/metrics/kid.py"] == {"features", "evaluate"}  # features: the sanity ladder
    assert users["gan/metrics/frechet.py"] == {"features", "reference", "train", "evaluate"}  # the in-training score
    assert users["gan/data/prepared.py"] == set(DVC["stages"]) - {"plots_page"}  # the page holds no data
    assert users["gan/data/datasets.py"] == users["gan/sources.py"] == {"prepare"}  # loaders: prepare alone


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
