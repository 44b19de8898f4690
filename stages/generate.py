"""DVC stage `generate`: samples, a sample grid, latent walks (and a scatter plot for 2-D data)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run this checkout's gan/, not an installed one

from gan.cli import run_stage  # noqa: E402
from gan.generation import GeneratePaths, generate  # noqa: E402

if __name__ == "__main__":
    run_stage("generate", {"generator": "models/generator.pt", "prepared": "data/prepared",
                           "run_link": "reports/train/run.json", "out": "data/generated",
                           "figures": "reports/generate", "evaluator": "models/evaluator.pt"},
              lambda cfg, a: generate(cfg, GeneratePaths(a.generator, a.prepared, a.run_link, a.out, a.figures,
                                                         a.evaluator)))
