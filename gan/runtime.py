"""Device choice and determinism, shared by every stage that runs a network."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from gan.errors import UserError


def resolve_device(name: str) -> torch.device:
    """'auto' takes CUDA when there is one; an explicit 'cuda' without one is a user error.

    Every stage that runs a network comes here, so this is also where its torch threads and
    its fp32 precision are set (configure_threads, exact_fp32).
    """
    configure_threads()
    exact_fp32()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device={name} but torch sees no CUDA device on this machine; "
                        f"set train.device: auto or cpu")
    return torch.device(name)


THREADS_VARIABLE = "GAN_THREADS"


def torch_threads() -> int:
    """The torch threads of one stage process: a budget of $GAN_THREADS when set, else of the cores this process
    may run on (its CPU affinity: taskset, a cgroup cpuset), shared among the training processes on this machine.

    Two queue workers on one machine (`dvc queue start -j 2`) each take every core unless told:
    `GAN_THREADS=1 dvc queue start -j 2` gives each stage one thread.
    """
    raw = os.environ.get(THREADS_VARIABLE, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise UserError(f"{THREADS_VARIABLE}={raw!r} must be a whole number of threads >= 1; "
                            f"unset it to use this process's cores")
        budget = int(raw)
    else:
        budget = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, budget // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def configure_threads() -> int:
    threads = torch_threads()
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def exact_fp32() -> None:
    """fp32 means IEEE fp32 on CUDA as on the CPU: no TF32 in matmuls or convolutions (penalties and
    Inception features are sensitive to its 10-bit mantissa). bf16, where asked for, is autocast's."""
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    torch.backends.cudnn.conv.fp32_precision = "ieee"


def make_deterministic(seed: int, device: torch.device) -> None:
    """Seed every global RNG; on the CPU also demand deterministic kernels (bit-exact resume).

    CUDA runs are seeded but use the fast non-deterministic kernels (cuDNN autotuning, atomics):
    reproducible up to the library's limits, as the README says. Both settings are made either way,
    so a CUDA run after a CPU one in the same process does not inherit the CPU's.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    exact = device.type == "cpu"
    torch.use_deterministic_algorithms(exact)
    # deterministic mode also fills every new tensor with NaN, a debugging aid that costs about 5% of a CPU
    # step; every kernel here writes its output before reading it (the bit-exact resume tests hold that)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.benchmark = not exact


def generator_for(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    """One torch.Generator per purpose (data indices, noise, ...), seeded from (seed, purpose)."""
    offset = sum(ord(c) * 31**i for i, c in enumerate(purpose)) % 2**31
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 1_000_003 + offset)
    return gen
