"""DVC stage `prepare`: the dataset named by data.name, in the common prepared format."""

from gan.cli import run_stage
from gan.data import prepare

if __name__ == "__main__":
    run_stage("prepare", {"out": "data/prepared"}, lambda cfg, a: prepare(cfg, a.out))
