"""Mode collapse on grid25 (or ring8): compare GAN variants over seeds, with the evaluate stage's mode metrics.

    python benchmarks/grid25_compare.py                       # the three variants of the README, 3 seeds
    python benchmarks/grid25_compare.py --steps 2000 --seeds 0 1 --data ring8

Each run trains in-process with the pipeline's own code (gan.training / gan.updates), then
scores 5,000 samples of the final generator (EMA when on) with the `modes` metric: modes
captured (of 25), % high-quality samples (within 3 std of a mode), reverse KL to uniform.
Prints one row per variant with mean ± std over seeds. Single-threaded, so runs do not fight
over cores; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from gan.config import parse_params
from gan.data import DATASETS
from gan.metrics.modes import mode_scores
from gan.metrics.registry import FeatureView
from gan.runtime import generator_for
from gan.training import Batches, build_state
from gan.updates import make_plan, train_step

BASE = {"data": {"name": "grid25"}, "model": {"arch": "mlp", "width": 128, "latent_dim": 16},
        "train": {"batch_size": 128, "lr_g": 0.001, "lr_d": 0.001, "betas_g": [0.5, 0.99], "betas_d": [0.5, 0.99]}}
VARIANTS = {
    "nonsaturating": {},
    "nonsaturating, pack 4": {"train": {"pack": 4}},
    "hinge, spectral norm": {"train": {"loss": "hinge"}, "model": {"spectral_norm": True}},
}


def merged(extra: dict, seed: int, steps: int) -> dict:
    out = {k: dict(v) for k, v in BASE.items()}
    for section, values in extra.items():
        out[section].update(values)
    out["train"]["steps"] = steps
    return {**out, "seed": seed}


MIXTURES = ("grid25", "ring8")


def run(params: dict) -> dict[str, float]:
    cfg = parse_params(params)
    split = DATASETS[cfg.data.name].load(cfg.data, cfg.seed)  # what `prepare` writes for this data
    modes, std = np.asarray(split.extra["modes"]), split.extra["mode_std"]
    state = build_state(cfg, (2,), torch.device("cpu"))
    batches = Batches(split.train_x, "points", torch.device("cpu"), state.index_rng)
    plan = make_plan(cfg, 0, None, torch.device("cpu"))
    for _ in range(cfg.train.steps):
        train_step(state, plan, batches)
    z = torch.randn(5000, cfg.model.latent_dim, generator=generator_for(cfg.seed, "generate"))
    fake = state.sample(z).numpy()
    view = FeatureView(np.zeros((0, 2)), fake, modes=modes, mode_std=std)
    return mode_scores(view, cfg.seed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", choices=MIXTURES, default="grid25")
    args = parser.parse_args()
    torch.set_num_threads(1)
    BASE["data"]["name"] = args.data
    print(f"{args.data}, MLP width {BASE['model']['width']}, {args.steps} steps, seeds {args.seeds}")
    print(f"{'variant':<24} {'modes captured':>14} {'high quality %':>16} {'reverse KL':>12} {'s/run':>7}")
    for name, extra in VARIANTS.items():
        started = time.perf_counter()
        rows = [run(merged(extra, seed, args.steps)) for seed in args.seeds]
        cols = [np.array([r[k] for r in rows]) for k in ("modes_captured", "high_quality_pct", "reverse_kl")]
        cells = [f"{c.mean():.1f} ± {c.std():.1f}" if i < 2 else f"{c.mean():.3f} ± {c.std():.3f}"
                 for i, c in enumerate(cols)]
        seconds = (time.perf_counter() - started) / len(args.seeds)
        print(f"{name:<24} {cells[0]:>14} {cells[1]:>16} {cells[2]:>12} {seconds:7.1f}")


if __name__ == "__main__":
    main()
