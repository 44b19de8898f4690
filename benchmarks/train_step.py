"""Time the project's train step against a plain PyTorch loop of the same networks, side by side.

    python benchmarks/train_step.py                      # params.yaml's model on its data, CPU
    python benchmarks/train_step.py --device cuda --repeats 7 --steps 50

Both sides train the networks that params.yaml builds (the default: DCGAN on mnist5k, batch 64),
on the same real images, with Adam and the non-saturating loss. The plain loop is what a user
would write by hand (the pytorch/examples DCGAN shape): one G forward per step, its output
detached for D and reused for G. The project's side is `gan.updates.train_step`, everything it
does included (batch draws from its RNG, the loss readouts, the optional extras of params.yaml).

The two run alternately, `--repeats` times each, after `--warmup` steps of each, so that a
machine whose speed drifts (frequency, neighbours) drifts for both; the figures are the medians.
Prints img/s for each and the ratio project / plain. Numbers, not pass/fail: a test would be
too noisy on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan import models
from gan.config import parse_params
from gan.data import DATASETS
from gan.images import to_tensor
from gan.training import Batches, build_state
from gan.updates import make_plan, train_step
from recipes import machine  # benchmarks/, this script's folder, is on sys.path


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainLoop:
    """The hand-written loop: fresh networks of the same architecture, BCE with logits, Adam."""

    def __init__(self, cfg, shape: tuple[int, ...], images: torch.Tensor, device: torch.device):
        m, t = cfg.model, cfg.train
        self.G, self.D = models.build(m.arch, shape, m.latent_dim, m.width, options=m.options(),
                                      latent_components=m.latent_components)
        self.G.to(device).train()
        self.D.to(device).train()
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, betas=t.betas_g)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, betas=t.betas_d)
        self.images, self.batch, self.latent, self.device = images, t.batch_size, m.latent_dim, device

    def step(self) -> None:
        idx = torch.randint(len(self.images), (self.batch,), device=self.device)
        real = self.images[idx]
        fake = self.G(torch.randn(self.batch, self.latent, device=self.device))
        ones = torch.ones(self.batch, device=self.device)
        zeros = torch.zeros(self.batch, device=self.device)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d = (F.binary_cross_entropy_with_logits(self.D(real), ones)
                  + F.binary_cross_entropy_with_logits(self.D(fake.detach()), zeros))
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(self.D(fake), ones).backward()
        self.opt_g.step()


def timed(run, steps: int, device: torch.device) -> float:
    """Seconds for `steps` calls of run(), the device drained before and after."""
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        run()
    synchronize(device)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30, help="steps per timed repeat (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each side (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps of each side first (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = parse_params(yaml.safe_load(args.params.read_text()))
    spec = DATASETS[cfg.data.name]
    if spec.kind != "images":
        raise SystemExit(f"benchmarks/train_step.py times image models; data.name={cfg.data.name} is 2-D points")
    if cfg.model.conditional or cfg.train.pack > 1:
        raise SystemExit("benchmarks/train_step.py: the plain loop is unconditional and unpacked; "
                         "time model.conditional: false and train.pack: 1")
    split = spec.load(cfg.data, cfg.seed)
    shape = tuple(split.train_x.shape[1:])
    nc = split.num_classes if cfg.model.conditional else 0
    state = build_state(cfg, shape, device, nc)
    batches = Batches(split.train_x, "images", device, state.index_rng, split.train_y if nc else None)
    plan = make_plan(cfg, nc, None, device)
    plain = PlainLoop(cfg, shape, to_tensor(split.train_x, device), device)

    def project() -> None:
        train_step(state, plan, batches)

    timed(project, args.warmup, device)
    timed(plain.step, args.warmup, device)
    ours, theirs = [], []
    for _ in range(args.repeats):  # alternate, so that drift hits both sides alike
        ours.append(timed(project, args.steps, device))
        theirs.append(timed(plain.step, args.steps, device))
    images = args.steps * cfg.train.batch_size
    ours_ips, theirs_ips = images / statistics.median(ours), images / statistics.median(theirs)
    print(f"{cfg.model.arch} on {cfg.data.name}, batch {cfg.train.batch_size}, device {device}, "
          f"{torch.get_num_threads()} threads; {machine()}")
    print(f"median of {args.repeats} repeats of {args.steps} steps, alternating, after {args.warmup} warm-up steps each")
    print(f"project train_step: {ours_ips:8.1f} img/s ({statistics.median(ours) / args.steps * 1e3:.1f} ms/step)")
    print(f"plain loop:         {theirs_ips:8.1f} img/s ({statistics.median(theirs) / args.steps * 1e3:.1f} ms/step)")
    print(f"ratio project / plain: {ours_ips / theirs_ips:.2f}x")


if __name__ == "__main__":
    main()
