"""DVC stage `prepare`: the dataset named by data.name, in the common prepared format."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run this checkout's gan/, not an installed one

from gan.cli import run_stage  # noqa: E402
from gan.data.datasets import prepare  # noqa: E402

if __name__ == "__main__":
    run_stage("prepare", {"out": "data/prepared"}, lambda cfg, a: prepare(cfg, a.out))
