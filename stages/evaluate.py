"""DVC stage `evaluate`: the metrics of evaluate.metrics, each with its protocol, to metrics.json and MLflow."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run this checkout's gan/, not an installed one

from gan.cli import run_stage  # noqa: E402
from gan.evaluation import EvaluatePaths, evaluate  # noqa: E402

if __name__ == "__main__":
    run_stage("evaluate", {"samples": "data/generated/samples.npz", "generator": "models/generator.pt",
                           "prepared": "data/prepared", "evaluator": "models/evaluator.pt",
                           "reference": "models/reference_inception.pt", "run_link": "reports/train/run.json",
                           "metrics": "reports/metrics.json", "details": "reports/evaluate"},
              lambda cfg, a: evaluate(cfg, EvaluatePaths(a.samples, a.generator, a.prepared, a.evaluator,
                                                         a.reference, a.run_link, a.metrics, a.details)))
