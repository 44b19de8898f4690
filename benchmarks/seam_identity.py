"""Does the generation task train the same generator as a given commit? Weights compared bit for bit.

    python benchmarks/seam_identity.py --base 9cac24a

Runs the prepare and train stages of `--base` (a git revision, checked out with `git archive`) and of
this working tree in temporary folders, with the same params (the default params.yaml of each, with the
overrides below so that a case takes seconds), and prints the sha256 of every generator's weights. A
case differs when the code changed what training computes; a change of structure only (the task seam of
issue 18) must leave every case equal. Same machine, same thread count (both runs here, one after the other).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]

COMMON = {"train": {"steps": 60, "batch_size": 32, "eval_every": 0, "sample_every": 30, "checkpoint_every": 30,
                    "log_every": 10}}
CASES: dict[str, dict] = {
    "dcgan mnist5k": {},
    "dcgan conditional, DiffAugment, lazy R1, EMA": {
        "model": {"conditional": True}, "train": {"augment": ["color", "translation"], "r1_weight": 1.0,
                                                  "r1_interval": 4, "ema_half_life_images": 500.0}},
    "mlp ring8, pack 2, hinge, 2 D steps, lr decay": {
        "data": {"name": "ring8", "num_points": 2000}, "model": {"arch": "mlp", "width": 64},
        "train": {"pack": 2, "loss": "hinge", "d_steps": 2, "lr_decay_start": 0.5}},
    "mlp ring8, wasserstein-gp": {
        "data": {"name": "ring8", "num_points": 2000}, "model": {"arch": "mlp", "width": 64, "g_norm": "none"},
        "train": {"loss": "wasserstein"}},
}


def merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def checkout(revision: str, into: Path) -> None:
    archive = subprocess.run(["git", "archive", revision], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")


def working_tree(into: Path) -> None:
    shutil.copytree(ROOT, into, ignore=shutil.ignore_patterns(".git", ".venv", ".dvc", "data", "models", "checkpoints",
                                                              "reports", "mlartifacts", "mlflow.db*", "__pycache__"),
                    dirs_exist_ok=True)


def weights_digest(tree: Path, case: dict) -> str:
    params = merge(merge(yaml.safe_load((tree / "params.yaml").read_text()), COMMON), case)
    (tree / "case.yaml").write_text(yaml.safe_dump(params))
    for folder in ("data/prepared", "models", "checkpoints", "reports/train"):
        shutil.rmtree(tree / folder, ignore_errors=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tree}/mlflow.db", "MLFLOW_DISABLE_TELEMETRY": "true",
           "PYTHONHASHSEED": "0"}
    for stage in ("prepare", "train"):
        done = subprocess.run([sys.executable, f"stages/{stage}.py", "--params", "case.yaml"], cwd=tree, env=env,
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{tree}: stage {stage} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    state = torch.load(tree / "models/generator.pt", map_location="cpu", weights_only=False)["state_dict"]
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the git revision to compare with, e.g. 9cac24a")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base, new = Path(tmp) / "base", Path(tmp) / "new"
        checkout(args.base, base)
        working_tree(new)
        print(f"{'case':<48} {'base ' + args.base:<20} {'this tree':<18} same")
        differ = 0
        for name, case in CASES.items():
            a, b = weights_digest(base, case), weights_digest(new, case)
            differ += a != b
            print(f"{name:<48} {a:<20} {b:<18} {'yes' if a == b else 'NO'}")
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
