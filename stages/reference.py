"""DVC stage `reference`: Inception statistics of the held-out reals, when an Inception metric is asked for."""

from gan.cli import run_stage
from gan.reference import build_reference

if __name__ == "__main__":
    run_stage("reference", {"prepared": "data/prepared", "out": "models/reference_inception.pt"},
              lambda cfg, a: build_reference(cfg, a.prepared, a.out))
