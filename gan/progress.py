"""What a run shows while it trains: the in-training score and the progress pictures.

`TrainingScore` scores G every train.eval_every steps on fixed inputs (FID in the domain features, or
the mode scores of 2-D data) into reports/train/eval.tsv and MLflow; `sample_grid` draws G's outputs on
fixed inputs every train.sample_every steps (a grid, a scatter plot, or a paired task's triptychs).
Neither decides anything: the final numbers come from the evaluate stage.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from gan import sampling, tracking
from gan.config import Config
from gan.evaluator import load_evaluator
from gan.figures import save_columns, source_view
from gan.images import to_stored, to_tensor
from gan.metrics.frechet import fid
from gan.metrics.modes import mode_scores
from gan.metrics.registry import result_key
from gan.reporting import append_tsv, write_tsv
from gan.runtime import generator_for
from gan.state import Batches, State

SCATTER_POINTS = 1000  # generated points in each 2-D progress plot


class TrainingScore:
    """A cheap FID-style score (or mode coverage, for 2-D data) of G every train.eval_every steps.

    It uses train.eval_samples samples from the same latents each time, so the curve shows G
    changing, not the noise. It is a progress curve only: the final metrics come from the
    final generator in the evaluate stage, and no checkpoint is picked by this score.
    """

    BATCH = 500  # memory only: G and the classifier run in eval mode, so results do not depend on it
    # the registry metric, its computation (imported from its own module, not through every metric) and keys
    SCORES = {"fid_domain": (fid, ("fid",)),
              "modes": (partial(mode_scores, floor=False),  # the floor is a constant: evaluate reports it
                        ("modes_captured", "high_quality_pct", "reverse_kl", "spread_ratio", "emd"))}

    def __init__(self, cfg: Config, evaluator: Path, history: Path, state: State, run: tracking.TrackedRun,
                 sources: Any = None, captions: torch.Tensor | None = None):
        self.sources = sources  # a paired task: the held-out sources, the first eval_samples of them scored
        self.captions = captions  # text-to-image: the held-out images' caption tokens (M, L), cycled
        self.evaluator = load_evaluator(evaluator)
        self.name = "modes" if self.evaluator.kind == "points" else "fid_domain"
        self.key = lambda k: result_key(self.name, k, cfg.train.eval_samples)
        self.cfg, self.path, self.run = cfg, history, run
        self.compute, keys = self.SCORES[self.name]
        self.columns = [self.key(k) for k in keys]
        write_tsv(self.path, self.columns, state.eval_history)

    def _compute(self, state: State) -> dict[str, float]:
        cfg, device = self.cfg, state.fixed_z.device
        if self.sources is not None:
            z, y = to_tensor(self.sources[:cfg.train.eval_samples], device), None
        else:
            z = sampling.noise(cfg.train.eval_samples, cfg.model.latent_dim,
                               generator_for(cfg.seed, "train-eval", device), device)
            y = self.labels(state, len(z)) if self.captions is None else self._captions(len(z), device)
        view = self.evaluator.view(to_stored(state.sample(z, y)), self.BATCH, device)
        return self.compute(view, cfg.seed)

    def _captions(self, count: int, device: torch.device) -> torch.Tensor:
        repeats = -(-count // len(self.captions))
        return self.captions.repeat(repeats, 1)[:count].to(device)

    @staticmethod
    def labels(state: State, count: int) -> torch.Tensor | None:
        """Balanced requested classes for a conditional G: the score sees every class equally."""
        if state.fixed_y is None:
            return None
        return sampling.balanced_labels(count, int(state.fixed_y.max()) + 1, state.fixed_z.device)

    def __call__(self, state: State) -> None:
        scores = {self.key(k): v for k, v in self._compute(state).items()}
        row = [float(state.step), *(scores[c] for c in self.columns)]
        state.eval_history.append(row)
        append_tsv(self.path, [row])
        self.run.log_metrics([(state.step, {f"train_eval/{k}": v for k, v in scores.items()})])


def sample_grid(state: State, cfg: Config, directory: Path, batches: Batches, run: tracking.TrackedRun,
                targets: Any = None) -> None:
    """A grid of G(fixed z) at this step, on disk and in MLflow; 2-D data gets a scatter plot, and a paired
    task the triptychs of its fixed held-out pairs (`targets`: their target images)."""
    fake = state.sample(state.fixed_z, state.fixed_y)
    path = directory / f"step_{state.step:06d}.png"
    if targets is not None:  # a paired task: held-out source | output | target
        outputs = to_stored(fake)
        sources = source_view(to_stored(state.fixed_z), outputs.shape[1:])
        save_columns([("source", sources), ("output", outputs), ("target", targets)], path, rows=len(outputs))
    elif fake.dim() == 4:
        sampling.save_grid(fake, path, cfg.generate.grid_rows)
    else:
        real = batches.data[:SCATTER_POINTS].cpu().numpy()  # a fixed slice: drawing would move the batch RNG
        sampling.save_scatter(real, fake.cpu().numpy(), path)
    run.log_artifact(path, "samples")
