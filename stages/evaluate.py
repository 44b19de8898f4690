"""DVC stage `evaluate`: FID-style and coverage scores of the generated samples, to metrics.json and MLflow."""

from gan.cli import run_stage
from gan.evaluation import EvaluatePaths, evaluate

if __name__ == "__main__":
    run_stage("evaluate", {"samples": "data/generated/samples.npz", "prepared": "data/prepared",
                           "evaluator": "models/evaluator.pt", "run_link": "reports/train/run.json",
                           "metrics": "reports/metrics.json"},
              lambda cfg, a: evaluate(cfg, EvaluatePaths(a.samples, a.prepared, a.evaluator, a.run_link,
                                                         a.metrics)))
