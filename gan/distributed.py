"""Data-parallel training over several processes: torchrun's launcher, gloo on the CPU, NCCL on CUDA.

Each process holds a full copy of G and D, draws its own share of the global batch and its own
latents (RNGs seeded by (seed, rank)), and averages its gradients with the others after every
backward, before the optimiser steps; every replica then takes the same step. That is what
DistributedDataParallel does, written out: a GAN step runs D, then G through a frozen D, and
plain all-reduces after each backward keep that alternation easy to read (no DDP wrapper to
keep in sync with requires_grad switches). The gradients of one module travel as one
flattened buffer, so each update costs one collective.

Only rank 0 talks to MLflow and writes files (curves, grids, scores, checkpoints, the
generator); a checkpoint carries every rank's RNG states, so a killed run resumes bit for bit
at the same world size. Batch norm normalises each process's share unless
model.sync_batchnorm (CUDA) makes it global.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from gan.errors import UserError


@dataclass(frozen=True)
class World:
    """Where this process stands among the training processes (torchrun's RANK, WORLD_SIZE, LOCAL_RANK)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that logs, writes and checkpoints."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def share(self, batch_size: int) -> int:
        """This process's part of the global batch; every process takes the same share."""
        if batch_size % self.size:
            raise UserError(f"train.batch_size ({batch_size}) is the global batch and must split evenly over the "
                            f"{self.size} training processes; set a multiple of {self.size}")
        return batch_size // self.size

    def average_gradients(self, module: nn.Module) -> None:
        """Replace each gradient of `module` by its mean over the processes: one all-reduce per call."""
        if not self.parallel:
            return
        grads = [p.grad for p in module.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    def average_stats(self, stats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The losses and D readouts of a step, averaged over the processes (stay on the device)."""
        if not self.parallel:
            return stats
        names = sorted(stats)
        stacked = torch.stack([stats[k].float() for k in names])
        dist.all_reduce(stacked)
        stacked /= self.size
        return dict(zip(names, stacked.unbind()))

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value` (picklable, e.g. RNG states), in rank order, on every rank."""
        if not self.parallel:
            return [value]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, value)
        return out

    def barrier(self) -> None:
        if self.parallel:
            dist.barrier()


SINGLE = World()


def launched() -> bool:
    """True inside a process that torchrun (or torch.distributed.run) started."""
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def world_from_environment() -> World:
    env = os.environ
    if not launched():
        return SINGLE
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)),
                 int(env.get("LOCAL_WORLD_SIZE", env.get("WORLD_SIZE", 1))))


def die_with_launcher() -> None:
    """Linux: end this worker when its launcher dies, even by SIGKILL (a killed `dvc repro`, an OOM kill).

    The launcher starts its workers in sessions of their own, so a signal to its process group
    does not reach them; without this they would train on, orphaned, and race the next run.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the launcher died before the line above
        os._exit(1)


def join(world: World, device: torch.device) -> None:
    """Join the process group: NCCL when this process trains on a GPU, gloo on the CPU."""
    if world.parallel and os.environ.get("GAN_LAUNCHED"):
        die_with_launcher()
    if world.parallel and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device
                                if device.type == "cuda" else None)


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_device(name: str, world: World) -> str:
    """The device name a process uses: with several processes on CUDA, GPU number LOCAL_RANK each."""
    if not world.parallel or name == "cpu":
        return name
    if name == "auto" and not torch.cuda.is_available():
        return "cpu"
    if name.startswith("cuda:"):
        raise UserError(f"train.device={name} names one GPU, but train.processes runs {world.local_size} processes "
                        f"here, one GPU each; set train.device: cuda (process N takes cuda:N)")
    count = torch.cuda.device_count()
    if world.local_size > count:
        raise UserError(f"train.processes={world.local_size} needs one GPU per process, but torch sees {count} "
                        f"GPU(s); set train.processes to at most {count}, or train.device: cpu")
    torch.cuda.set_device(world.local_rank)
    return f"cuda:{world.local_rank}"


def sync_batch_norm(modules: Iterable[nn.Module], world: World, device: torch.device, wanted: bool) -> None:
    """model.sync_batchnorm: batch norm statistics over the global batch (CUDA only); in place."""
    if not wanted or not world.parallel:
        return
    if device.type != "cuda":
        raise UserError("model.sync_batchnorm: true needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel); "
                        "set it to false, so that each process normalises its own share of the batch")
    for module in modules:
        for name, child in list(module.named_children()):
            converted = nn.SyncBatchNorm.convert_sync_batchnorm(child)
            if converted is not child:
                setattr(module, name, converted)


def launch(processes: int, argv: list[str], threads: int) -> int:
    """Run `python argv...` as `processes` workers through PyTorch's elastic launcher (what torchrun runs),
    on this machine; returns the exit code of the first worker that failed, or 0.

    Workers print their own errors (a user error is one line); the launcher's traceback is not shown.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    os.environ["OMP_NUM_THREADS"] = str(threads)  # each worker's share of the cores; torchrun would say 1
    os.environ["GAN_LAUNCHED"] = "1"  # the workers end with this process (die_with_launcher)
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=f"gan-{uuid.uuid4().hex[:8]}",
                          rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0, monitor_interval=0.1)
    try:
        elastic_launch(config, entrypoint=sys.executable)(*argv)
    except ChildFailedError as exc:
        codes = [f.exitcode for f in exc.failures.values()]
        return next((c for c in codes if c > 0), 1)
    return 0
