"""Seconds per SimCLR step of gan.selfsupervised, for the data shapes it is meant for.

    python benchmarks/selfsupervised_step.py                  # 80 x 32x32x1 batch 80, 4000 x 28x28x1 batch 128
    python benchmarks/selfsupervised_step.py --steps 50 --device cuda

Random uint8 images stand in for real ones (a step costs the same). The first steps are run once
untimed (allocator and kernel warm-up). Prints the fastest of --repeats timed runs, the one least slowed
by other processes on a shared machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gan.runtime import resolve_device
from gan.selfsupervised import DEFAULT_STEPS, train_self_supervised

CASES = {"80 x 32x32x1, batch 80": (80, 32, 1, 80), "4000 x 28x28x1, batch 128": (4000, 28, 1, 128)}


def seconds_per_step(images: np.ndarray, batch_size: int, steps: int, device) -> float:
    started = time.perf_counter()
    train_self_supervised(images, steps=steps, batch_size=batch_size, lr=1e-3, seed=0, device=device)
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = resolve_device(args.device)
    for label, (count, size, channels, batch_size) in CASES.items():
        images = np.random.default_rng(0).integers(0, 256, (count, size, size, channels), dtype=np.uint8)
        seconds_per_step(images, batch_size, 2, device)  # warm-up
        fastest = min(seconds_per_step(images, batch_size, args.steps, device) for _ in range(args.repeats))
        print(f"{label:<28} {fastest * 1000:7.1f} ms/step   {DEFAULT_STEPS} steps: {fastest * DEFAULT_STEPS:6.1f} s")


if __name__ == "__main__":
    main()
