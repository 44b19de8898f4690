"""How long evaluation takes: feature extraction and each metric, for N generated samples.

    python benchmarks/evaluation_speed.py                     # domain extractor, 10k samples, CPU
    python benchmarks/evaluation_speed.py --inception --samples 50000 --device cuda

Uses the repo's prepared data and evaluator (run `dvc repro features` first); generated
samples are stood in for by real training images repeated to N, which costs the same.
Prints one line per step with seconds; nothing is asserted (CI machines are noisy).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from gan.data import load_prepared
from gan.evaluator import load_evaluator
from gan.metrics import families
from gan.metrics.registry import METRICS
from gan.runtime import resolve_device


def timed(label: str, call):
    started = time.perf_counter()
    out = call()
    print(f"{label:<40} {time.perf_counter() - started:8.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--inception", action="store_true", help="also time Inception features (needs weights)")
    parser.add_argument("--inception-weights", default="")
    args = parser.parse_args()
    device = resolve_device(args.device)
    prepared = load_prepared(Path("data/prepared"))
    evaluator = load_evaluator(Path("models/evaluator.pt"))
    fake_images = np.resize(prepared.train_x, (args.samples, *prepared.train_x.shape[1:]))
    print(f"{args.samples} samples of {fake_images.shape[1:]} on {device}, reference {evaluator.ref_count} images")
    total = time.perf_counter()
    view = timed("domain features + logits", lambda: evaluator.view(fake_images, args.batch_size, device))
    for name in (n for n, m in METRICS.items() if m.extractor == "domain" and not m.needs_conditional):
        timed(name, lambda: families.compute(name, view, 0))
    print(f"{'all domain metrics':<40} {time.perf_counter() - total:8.2f} s")
    if args.inception:
        from gan.metrics.inception import InceptionFeatures, resolve_weights

        network = InceptionFeatures(resolve_weights(args.inception_weights), device)
        timed(f"Inception features of {args.samples}", lambda: network.embed(fake_images, args.batch_size))


if __name__ == "__main__":
    main()
