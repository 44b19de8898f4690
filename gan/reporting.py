"""The collector of per-step numbers: buffered on the device, written out in batches.

Training calls `add(step, {name: tensor})` each step without a host sync; `flush()` turns
the buffer into numbers with one transfer, appends them to the history file that dvc.yaml
declares as plots (a small append on the calling thread: a failed write raises at once), and
hands them to the MLflow run, which only queues them for its sender thread (or its outbox
while the store is down). Trouble with the store never reaches training. The time the training
thread spends in `flush` is counted, so a run reports its own logging overhead.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm


class Reporter:
    columns: tuple[str, ...] = ("loss_d", "loss_g", "d_real", "d_fake")  # generation's; a task adds its terms

    def __init__(self, history_path: Path, run: Any, history: list[list[float]], total: int, start: int,
                 logged_through: int = 0, columns: tuple[str, ...] | None = None):
        """`history` is the run's rows so far (from the checkpoint); the file is rewritten from it.

        `logged_through` is the last step the MLflow run already holds (a resumed run). The store gets
        every step exactly once: the rows of `history` after it (queued but not sent when the process
        died), then the new ones, never again the ones it holds, which a bit-exact resume recomputes
        with the same values.
        """
        self.columns = tuple(columns or Reporter.columns)  # the task's (gan.tasks), loss_d first
        self.history_path = history_path
        self.logged_through = logged_through
        self.run = run
        self.history = history
        self.pending: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.seconds = 0.0
        write_tsv(history_path, self.columns, history)
        self.bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True,
                        mininterval=1.0, disable=total == 0)
        self.store_failures = 0  # log_metrics calls that raised; the history file has those rows
        self._hand_to_store(history)  # rows queued but not sent when the process died

    def add(self, step: int, values: dict[str, torch.Tensor]) -> None:
        self.pending.append((step, values))

    def flush(self) -> None:
        if not self.pending:
            return
        device = self.pending[-1][1][self.columns[0]].device
        if device.type == "cuda":  # the steps queued on the GPU finish first: waiting for them is training time
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        stacked = torch.stack([torch.stack([v[c] for c in self.columns]) for _, v in self.pending])
        numbers = stacked.float().cpu().tolist()  # the one host sync per flush
        rows = [[float(step), *values] for (step, _), values in zip(self.pending, numbers)]
        self.pending.clear()
        self.history.extend(rows)
        append_tsv(self.history_path, rows)  # the plots file is an output: a failed write stops the run
        self._hand_to_store(rows)
        last = dict(zip(self.columns, rows[-1][1:]))
        self.bar.set_postfix({"loss_d": f"{last['loss_d']:.3f}", "loss_g": f"{last['loss_g']:.3f}",
                              "D(x)": f"{last['d_real']:.2f}", "D(G(z))": f"{last['d_fake']:.2f}"},
                             refresh=False)
        self.bar.update(len(rows))
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        """Flush what is left and close the progress bar."""
        try:
            self.flush()
        finally:
            self.bar.close()

    def _hand_to_store(self, rows: list[list[float]]) -> None:
        """The rows after `logged_through` to the run, which queues them and returns at once."""
        unsent = [(int(r[0]), dict(zip(self.columns, r[1:]))) for r in rows if r[0] > self.logged_through]
        if not unsent:
            return
        try:
            self.run.log_metrics(unsent)
        except Exception as exc:  # the store is not an output: its trouble must never stop training
            self._store_warning(exc)

    def _store_warning(self, exc: Exception) -> None:
        if not self.store_failures:
            print(f"train: could not hand metrics to MLflow ({type(exc).__name__}: {exc}); "
                  f"{self.history_path} keeps every step", file=sys.stderr)
        self.store_failures += 1


def write_tsv(path: Path, columns: list[str] | tuple[str, ...], rows: list[list[float]]) -> None:
    """A per-step file for `dvc plots`, rewritten whole: the header `step<TAB>columns...`, then `rows`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\t".join(["step", *columns]) + "\n" + "".join(_tsv_row(row) for row in rows))


def append_tsv(path: Path, rows: list[list[float]]) -> None:
    """Add rows of [step, values...] to a file that write_tsv started."""
    with path.open("a") as handle:
        handle.writelines(_tsv_row(row) for row in rows)


def _tsv_row(row: list[float]) -> str:
    return f"{int(row[0])}\t" + "\t".join(f"{v:.6g}" for v in row[1:]) + "\n"


def save_curves(history: list[list[float]], eval_history: list[list[float]], eval_columns: list[str],
                path: Path, columns: tuple[str, ...] = Reporter.columns) -> None:
    """The training curves as one PNG: losses, mean D outputs and each in-training score against step.

    The same numbers are in MLflow and in history.tsv/eval.tsv for `dvc plots`; this picture needs
    neither a server nor a browser. Per-step curves are drawn faint with a moving average over 1% of
    the run on top.
    """
    from gan.sampling import pyplot

    plt = pyplot()
    panels = [("losses", ("loss_d", "loss_g")), ("mean D output", ("d_real", "d_fake"))]
    terms = tuple(c for c in columns if c not in Reporter.columns)
    if terms:  # a paired task: G's terms, unweighted
        panels.append(("G's loss terms", terms))
    panels += [(column, (column,)) for column in eval_columns]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), dpi=110, squeeze=False)
    rows = np.asarray(history, dtype=np.float64).reshape(-1, len(columns) + 1)
    scores = np.asarray(eval_history, dtype=np.float64).reshape(-1, len(eval_columns) + 1)
    window = max(1, len(rows) // 100)
    for ax, (title, names) in zip(axes[0], panels):
        for name in names:
            if name in columns:
                steps, values = rows[:, 0], rows[:, 1 + columns.index(name)]
                line, = ax.plot(steps, values, linewidth=0.6, alpha=0.35 if window > 1 else 1.0)
                if window > 1:
                    smooth = np.convolve(values, np.ones(window) / window, mode="valid")
                    ax.plot(steps[window - 1:], smooth, color=line.get_color(), linewidth=1.4, label=name)
                else:
                    line.set_label(name)
            else:
                values = scores[:, 1 + eval_columns.index(name)]
                ax.plot(scores[:, 0], values, marker="o", markersize=3, label=name)
                if len(values) and values.min() > 0 and values.max() / values.min() > 20:
                    ax.set_yscale("log")  # an FID falls by orders of magnitude from step 0
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
