"""DVC stage `train`: G against D, checkpointed and resumable, tracked in MLflow."""

from gan.cli import run_stage
from gan.training import TrainPaths, train

if __name__ == "__main__":
    run_stage("train", {"prepared": "data/prepared", "generator": "models/generator.pt",
                        "checkpoints": "checkpoints", "reports": "reports/train", "evaluator": "models/evaluator.pt"},
              lambda cfg, a: train(cfg, TrainPaths(a.prepared, a.generator, a.checkpoints, a.reports, a.evaluator)))
