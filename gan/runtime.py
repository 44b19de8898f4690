"""Device choice and determinism, shared by every stage that runs a network."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from gan.errors import UserError


def resolve_device(name: str) -> torch.device:
    """'auto' takes CUDA when there is one; an explicit 'cuda' without one is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"train.device={name} but torch sees no CUDA device on this machine; "
                        f"set train.device: auto or cpu")
    return torch.device(name)


def make_deterministic(seed: int, device: torch.device) -> None:
    """Seed every global RNG; on the CPU also demand deterministic kernels (bit-exact resume).

    CUDA runs are seeded but use the fast non-deterministic kernels (cuDNN autotuning, atomics):
    reproducible up to the library's limits, as the README says.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    else:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = True


def generator_for(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    """One torch.Generator per purpose (data indices, noise, ...), seeded from (seed, purpose)."""
    offset = sum(ord(c) * 31**i for i, c in enumerate(purpose)) % 2**31
    gen = torch.Generator(device=device)
    gen.manual_seed(seed * 1_000_003 + offset)
    return gen
