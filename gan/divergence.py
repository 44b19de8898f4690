"""The guard against a diverged run: a NaN or Inf stops training before it is saved anywhere.

The losses are checked when the Reporter flushes them (every train.log_every steps), on the
numbers that flush has already copied to the host, so the guard adds no sync to the step. The
weights (G, D, the EMA of G and the optimiser moments) are checked once more right before each
checkpoint and before the generator is saved or logged, so nothing non-finite is ever written.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import torch

from gan.errors import UserError


class TrainingDiverged(UserError):
    """Training produced a non-finite value; the message says where, what and what to try."""


def first_non_finite(rows: Iterable[list[float]], columns: tuple[str, ...]) -> tuple[int, list[str]] | None:
    """(step, names of the non-finite values) of the first row of [step, *values] with a NaN or Inf."""
    for row in rows:
        bad = [f"{name}={value}" for name, value in zip(columns, row[1:]) if not math.isfinite(value)]
        if bad:
            return int(row[0]), bad
    return None


def non_finite_tensors(named: Iterable[tuple[str, Any]]) -> list[str]:
    """Names of the tensors with a NaN or Inf, found with one device-to-host transfer for all of them."""
    named = [(name, t) for name, t in named if torch.is_tensor(t) and t.is_floating_point() and t.numel()]
    if not named:
        return []
    finite = torch.stack([torch.isfinite(t).all() for _, t in named]).cpu().tolist()
    return [name for (name, _), ok in zip(named, finite) if not ok]


def advice(cfg: Any) -> str:
    t = cfg.train
    return (f"try lower learning rates (train.lr_g={t.lr_g:g}, train.lr_d={t.lr_d:g}) or another loss "
            f"(train.loss={t.loss}; hinge and nonsaturating are the most forgiving)")


def diverged(what: str, kept: str, cfg: Any) -> TrainingDiverged:
    """The one-line error: what was not finite, what was kept, what to try."""
    return TrainingDiverged(f"training diverged: {what}; nothing from then on was saved or logged as a model, "
                            f"{kept}; {advice(cfg)}")
