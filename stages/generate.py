"""DVC stage `generate`: samples, a sample grid, latent walks (and a scatter plot for 2-D data)."""

from gan.cli import run_stage
from gan.generation import GeneratePaths, generate

if __name__ == "__main__":
    run_stage("generate", {"generator": "models/generator.pt", "prepared": "data/prepared",
                           "run_link": "reports/train/run.json", "out": "data/generated",
                           "figures": "reports/generate"},
              lambda cfg, a: generate(cfg, GeneratePaths(a.generator, a.prepared, a.run_link, a.out, a.figures)))
