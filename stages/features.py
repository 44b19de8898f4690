"""DVC stage `features`: the domain classifier and reference statistics that evaluate scores against."""

from gan.cli import run_stage
from gan.features import build_evaluator

if __name__ == "__main__":
    run_stage("features", {"prepared": "data/prepared", "out": "models/evaluator.pt",
                           "metrics": "reports/features/metrics.json"},
              lambda cfg, a: build_evaluator(cfg, a.prepared, a.out, a.metrics))
