"""DVC stage `train`: G against D, checkpointed and resumable, tracked in MLflow."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run this checkout's gan/, not an installed one

from gan.cli import run_stage  # noqa: E402
from gan.tracking import check_store  # noqa: E402


def _train(cfg, a):
    check_store()  # before torch and the rest load: an unreachable store is reported in a second
    from gan.training import TrainPaths, train

    return train(cfg, TrainPaths(a.prepared, a.generator, a.checkpoints, a.reports, a.evaluator))


if __name__ == "__main__":
    run_stage("train", {"prepared": "data/prepared", "generator": "models/generator.pt",
                        "checkpoints": "checkpoints", "reports": "reports/train", "evaluator": "models/evaluator.pt"},
              _train)
