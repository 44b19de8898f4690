"""The guard against a diverged run: a NaN or Inf stops training before it is saved anywhere.

The losses are checked when the Reporter flushes them (every train.log_every steps), on the
numbers that flush has already copied to the host, so the guard adds no sync to the step. The
weights (G, D, the EMA of G and the optimiser moments) are checked once more right before each
checkpoint and before the generator is saved or logged, so nothing non-finite is ever written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import torch

from gan.errors import UserError

if TYPE_CHECKING:
    from gan.reporting import Reporter
    from gan.state import State


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


class Guard:
    """Stops the run at the first NaN or Inf, before anything non-finite is saved or logged as a model.

    `flush` hands the losses to the Reporter, which copies them to the host anyway; they are checked
    there, so the step itself gains no sync. The EMA weights are checked at every flush; all the
    weights and optimiser moments before every picture, score and checkpoint.
    """

    def __init__(self, state: State, cfg: Any, ckpt: Path, saved_step: int | None):
        self.state, self.cfg, self.ckpt, self.saved_step = state, cfg, ckpt, saved_step

    def flush(self, reporter: Reporter, weights: bool) -> None:
        history = self.state.history
        start = len(history)
        reporter.flush()
        bad_loss = first_non_finite(history[start:], self.state.columns)
        if bad_loss:
            step, names = bad_loss
            raise self._error(f"at step {step} {', '.join(names)} (checked at step {self.state.step})")
        bad = non_finite_tensors(self._tensors(everything=weights))
        if bad:
            shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
            raise self._error(f"by step {self.state.step} the weights {shown} were not finite")

    def _tensors(self, everything: bool) -> list[tuple[str, Any]]:
        state = self.state
        named = [(f"ema.{n}", p) for n, p in state.ema.model.state_dict().items()] if state.ema else []
        if everything:
            named += [(f"generator.{n}", p) for n, p in state.generator.state_dict().items()]
            named += [(f"discriminator.{n}", p) for n, p in state.discriminator.state_dict().items()]
            for label, opt in (("opt_g", state.opt_g), ("opt_d", state.opt_d)):
                named += [(f"{label}.{i}.{k}", v) for i, s in opt.state_dict()["state"].items() for k, v in s.items()]
        return named

    def _error(self, what: str) -> TrainingDiverged:
        kept = (f"the last good checkpoint (step {self.saved_step}) stays in {self.ckpt}" if self.saved_step
                else "no checkpoint of this run had been written")
        return diverged(what, kept, self.cfg)
