"""Time the project's train step against a plain PyTorch loop of the same networks, side by side.

    python benchmarks/train_step.py                      # params.yaml's model on its data, CPU
    python benchmarks/train_step.py --processes 2        # the project's side as 2 gloo processes of 1 thread
    python benchmarks/train_step.py --precision bf16 --compile
    python benchmarks/train_step.py --device cuda --repeats 7 --steps 50
    python benchmarks/train_step.py --device cuda --image-size 64 --precision bf16 --compile   # the 64 px GPU case

Both sides train the networks that params.yaml builds (the default: DCGAN on mnist5k, batch 64),
on the same real images, with Adam and the non-saturating loss. The plain loop is what a user
would write by hand (the pytorch/examples DCGAN shape): one G forward per step, its output
detached for D and reused for G. The project's side is `gan.updates.train_step`, everything it
does included (batch draws from its RNG, the loss readouts, the optional extras of params.yaml).

The sides run alternately, `--repeats` times each, after `--warmup` steps of each, so that a
machine whose speed drifts (frequency, neighbours) drifts for all; the figures are the medians.
The baseline is the plain loop in fp32; with `--precision bf16` the plain loop also runs in bf16
autocast beside it. `--processes N` runs the project's side as N data-parallel processes (what
train.processes does: gloo, the global batch split, gradients averaged), each with its share
of the threads, idle while the other side runs. Prints img/s for each and the ratios to the
plain fp32 loop. Numbers, not pass/fail: a test would be
too noisy on a shared 2-core machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gan import models
from gan.config import parse_params
from gan.data.datasets import DATASETS
from gan.distributed import SINGLE, World
from gan.images import to_tensor
from gan.training import Batches, build_state
from gan.updates import make_plan, train_step
from recipes import machine  # benchmarks/, this script's folder, is on sys.path


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainLoop:
    """The hand-written loop: fresh networks of the same architecture, BCE with logits, Adam.

    `bf16`: the same loop under bf16 autocast (as a user would add it), channels_last for conv nets.
    """

    def __init__(self, cfg, shape: tuple[int, ...], images: torch.Tensor, device: torch.device, bf16: bool = False):
        m, t = cfg.model, cfg.train
        self.G, self.D = models.build(m.arch, shape, m.latent_dim, m.width, options=m.options(),
                                      latent_components=m.latent_components)
        layout = torch.channels_last if bf16 and images.dim() == 4 else torch.contiguous_format
        self.G.to(device, memory_format=layout).train()
        self.D.to(device, memory_format=layout).train()
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=t.lr_g, betas=t.betas_g)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=t.lr_d, betas=t.betas_d)
        self.images, self.batch, self.latent, self.device = images, t.batch_size, m.latent_dim, device
        self.autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext

    def step(self) -> None:
        torch.use_deterministic_algorithms(False)
        idx = torch.randint(len(self.images), (self.batch,), device=self.device)
        real = self.images[idx]
        ones = torch.ones(self.batch, device=self.device)
        zeros = torch.zeros(self.batch, device=self.device)
        with self.autocast():
            fake = self.G(torch.randn(self.batch, self.latent, device=self.device))
            real_out, fake_out = self.D(real).float(), self.D(fake.detach()).float()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d = (F.binary_cross_entropy_with_logits(real_out, ones)
                  + F.binary_cross_entropy_with_logits(fake_out, zeros))
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            out = self.D(fake).float()
        F.binary_cross_entropy_with_logits(out, ones).backward()
        self.opt_g.step()


def timed(run, steps: int, device: torch.device) -> float:
    """Seconds for `steps` calls of run(), the device drained before and after."""
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        run()
    synchronize(device)
    return time.perf_counter() - started


def load(params: Path, image_size: int | None = None):
    """(cfg, the training split) of a params file; the plain loop cannot stand in for every setting."""
    raw = yaml.safe_load(params.read_text())
    if image_size:
        raw["data"]["image_size"] = image_size
    cfg = parse_params(raw)
    spec = DATASETS[cfg.data.name]
    if spec.kind != "images":
        raise SystemExit(f"benchmarks/train_step.py times image models; data.name={cfg.data.name} is 2-D points")
    if cfg.model.conditional or cfg.train.pack > 1:
        raise SystemExit("benchmarks/train_step.py: the plain loop is unconditional and unpacked; "
                         "time model.conditional: false and train.pack: 1")
    return cfg, spec.load(cfg.data, cfg.seed)


def with_settings(cfg, precision: str, compiled: bool):
    from dataclasses import replace

    return replace(cfg, train=replace(cfg.train, precision=precision, compile=compiled))


def project_side(cfg, split, device: torch.device, world: World = SINGLE):
    """The project's train step as stages/train.py runs it, for one rank: a callable doing one step."""
    shape = tuple(split.train_x.shape[1:])
    state = build_state(cfg, shape, device, 0, world)
    batches = Batches(split.train_x, "images", device, state.index_rng)
    plan = make_plan(cfg, 0, None, device, world)
    exact = device.type == "cpu"

    def step() -> None:
        torch.use_deterministic_algorithms(exact)  # as train runs it; the plain loop, as users write it, does not
        train_step(state, plan, batches)

    return step


class ProjectProcesses:
    """The project's step as `processes` gloo workers, each `threads` threads; `run(steps)` times them.

    Workers block on a queue between timed runs, so they leave the cores to the other side.
    """

    def __init__(self, args, processes: int, threads: int):
        ctx = multiprocessing.get_context("spawn")
        self.store = tempfile.mktemp(prefix="train-step-bench-")
        self.commands = [ctx.Queue() for _ in range(processes)]
        self.results = ctx.Queue()
        self.workers = [ctx.Process(target=_worker, daemon=True,
                                    args=(rank, processes, threads, self.store, args, self.commands[rank],
                                          self.results)) for rank in range(processes)]
        for worker in self.workers:
            worker.start()
        self.results.get()  # rank 0 has warmed up

    def run(self, steps: int) -> float:
        for queue in self.commands:
            queue.put(steps)
        return self.results.get()

    def close(self) -> None:
        for queue in self.commands:
            queue.put(None)
        for worker in self.workers:
            worker.join(timeout=60)
        Path(self.store).unlink(missing_ok=True)


def _worker(rank: int, size: int, threads: int, store: str, args, commands, results) -> None:
    import torch.distributed as dist

    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=size)
    cfg, split = load(args.params, args.image_size)
    step = project_side(with_settings(cfg, args.precision, args.compile), split, torch.device(args.device),
                        World(rank, size, rank, size))
    for _ in range(args.warmup):
        step()
    dist.barrier()
    if rank == 0:
        results.put(0.0)
    while (steps := commands.get()) is not None:
        dist.barrier()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        dist.barrier()
        if rank == 0:
            results.put(time.perf_counter() - started)
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=30, help="steps per timed repeat (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats of each side (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps of each side first (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch threads in all (default: the cores this process may use)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                        help="the project's train.precision; bf16 also times a bf16 plain loop (default: %(default)s)")
    parser.add_argument("--compile", action="store_true", help="the project's train.compile: true")
    parser.add_argument("--image-size", type=int, help="data.image_size (DCGAN: 28, 32 or 64; default: params')")
    parser.add_argument("--processes", type=int, default=1,
                        help="the project's side as this many gloo processes, CPU only (default: %(default)s)")
    args = parser.parse_args()
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    device = torch.device(args.device)
    if args.processes > 1 and device.type != "cpu":
        raise SystemExit("benchmarks/train_step.py: --processes times gloo on the CPU; on GPUs use train.processes")
    cfg, split = load(args.params, args.image_size)
    shape = tuple(split.train_x.shape[1:])
    images = to_tensor(split.train_x, device)
    sides = {"plain loop, fp32": PlainLoop(cfg, shape, images, device).step}
    if args.precision == "bf16":
        sides["plain loop, bf16"] = PlainLoop(cfg, shape, images.contiguous(memory_format=torch.channels_last),
                                              device, bf16=True).step
    label = f"project, {args.precision}" + (", compiled" if args.compile else "")
    workers = None
    if args.processes > 1:
        label += f", {args.processes} processes x {max(1, threads // args.processes)} threads"
        workers = ProjectProcesses(args, args.processes, max(1, threads // args.processes))
    else:
        project = project_side(with_settings(cfg, args.precision, args.compile), split, device)
        sides[label] = project
    for run in sides.values():
        timed(run, args.warmup, device)
    times: dict[str, list[float]] = {name: [] for name in [*sides, label]}
    try:
        for _ in range(args.repeats):  # alternate, so that drift hits every side alike
            for name, run in sides.items():
                times[name].append(timed(run, args.steps, device))
            if workers:
                times[label].append(workers.run(args.steps))
    finally:
        if workers:
            workers.close()
    images_per_run = args.steps * cfg.train.batch_size
    print(f"{cfg.model.arch} on {cfg.data.name}, batch {cfg.train.batch_size}, device {device}, "
          f"{threads} threads; {machine()}")
    print(f"median of {args.repeats} repeats of {args.steps} steps, alternating, after {args.warmup} warm-up steps each")
    baseline = images_per_run / statistics.median(times["plain loop, fp32"])
    width = max(map(len, times))
    for name, seconds in times.items():
        ips = images_per_run / statistics.median(seconds)
        print(f"{name:<{width}}  {ips:8.1f} img/s  {statistics.median(seconds) / args.steps * 1e3:6.1f} ms/step  "
              f"{ips / baseline:.2f}x the plain fp32 loop")
    ours = images_per_run / statistics.median(times[label])
    print(f"ratio project / plain fp32: {ours / baseline:.2f}x")


if __name__ == "__main__":
    main()
