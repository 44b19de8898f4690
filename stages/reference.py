"""DVC stage `reference`: Inception statistics of the held-out reals, when an Inception metric is asked for."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run this checkout's gan/, not an installed one

from gan.cli import run_stage  # noqa: E402
from gan.reference import build_reference  # noqa: E402

if __name__ == "__main__":
    run_stage("reference", {"prepared": "data/prepared", "out": "models/reference_inception.pt"},
              lambda cfg, a: build_reference(cfg, a.prepared, a.out))
