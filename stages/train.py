"""DVC stage `train`: G against D, checkpointed and resumable, tracked in MLflow.

With train.processes > 1 this script relaunches itself as that many workers through PyTorch's
launcher (what `torchrun --standalone --nproc-per-node N` runs); under torchrun it is one worker.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run this checkout's gan/, not an installed one

from gan.cli import run_stage  # noqa: E402
from gan.tracking import check_store  # noqa: E402


def _train(cfg, a):
    if os.environ.get("RANK", "0") == "0":  # the launcher or rank 0, the one that logs
        check_store()  # before torch and the rest load: an unreachable store is reported in a second
    from gan import distributed
    from gan.runtime import torch_threads

    if cfg.train.processes > 1 and not distributed.launched():
        threads = max(1, torch_threads() // cfg.train.processes)
        code = distributed.launch(cfg.train.processes, [str(Path(__file__).resolve()), *sys.argv[1:]], threads)
        if code:
            print(f"train: error: a training process failed (exit code {code}); its message is above", file=sys.stderr)
            sys.exit(code)
        return None
    from gan.training import TrainPaths, train

    return train(cfg, TrainPaths(a.prepared, a.generator, a.checkpoints, a.reports, a.evaluator))


if __name__ == "__main__":
    run_stage("train", {"prepared": "data/prepared", "generator": "models/generator.pt",
                        "checkpoints": "checkpoints", "reports": "reports/train", "evaluator": "models/evaluator.pt"},
              _train)
