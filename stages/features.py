"""DVC stage `features`: the domain classifier and reference statistics that evaluate scores against."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run this checkout's gan/, not an installed one

from gan.cli import run_stage  # noqa: E402
from gan.features import build_evaluator  # noqa: E402

if __name__ == "__main__":
    run_stage("features", {"prepared": "data/prepared", "out": "models/evaluator.pt",
                           "metrics": "reports/features/metrics.json"},
              lambda cfg, a: build_evaluator(cfg, a.prepared, a.out, a.metrics))
