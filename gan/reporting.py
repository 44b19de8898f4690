"""The collector of per-step numbers: buffered on the device, written out in batches.

Training calls `add(step, {name: tensor})` each step without a host sync; `flush()` turns
the buffer into numbers with one transfer and sends the rows to every sink: the MLflow
run (one log_batch call), the history file that dvc.yaml declares as plots, and the
progress bar. The time spent flushing is counted, so a run reports its logging overhead.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm


class Reporter:
    columns = ("loss_d", "loss_g", "d_real", "d_fake")

    def __init__(self, history_path: Path, run: Any, history: list[list[float]], total: int, start: int):
        """`history` is the run's rows so far (from the checkpoint); the file is rewritten from it."""
        self.history_path = history_path
        self.run = run
        self.history = history
        self.pending: list[tuple[int, dict[str, torch.Tensor]]] = []
        self.seconds = 0.0
        history_path.parent.mkdir(parents=True, exist_ok=True)
        with history_path.open("w") as handle:
            handle.write("step\t" + "\t".join(self.columns) + "\n")
            handle.writelines(_line(row) for row in history)
        self.bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True,
                        mininterval=1.0, disable=total == 0)

    def add(self, step: int, values: dict[str, torch.Tensor]) -> None:
        self.pending.append((step, values))

    def flush(self) -> None:
        if not self.pending:
            return
        started = time.perf_counter()
        stacked = torch.stack([torch.stack([v[c] for c in self.columns]) for _, v in self.pending])
        numbers = stacked.float().cpu().tolist()  # the one host sync per flush
        rows = [[float(step), *values] for (step, _), values in zip(self.pending, numbers)]
        self.pending.clear()
        self.history.extend(rows)
        with self.history_path.open("a") as handle:
            handle.writelines(_line(row) for row in rows)
        self.run.log_metrics([(int(r[0]), dict(zip(self.columns, r[1:]))) for r in rows])
        last = dict(zip(self.columns, rows[-1][1:]))
        self.bar.set_postfix({"loss_d": f"{last['loss_d']:.3f}", "loss_g": f"{last['loss_g']:.3f}",
                              "D(x)": f"{last['d_real']:.2f}", "D(G(z))": f"{last['d_fake']:.2f}"},
                             refresh=False)
        self.bar.update(len(rows))
        self.seconds += time.perf_counter() - started

    def close(self) -> None:
        self.flush()
        self.bar.close()


def _line(row: list[float]) -> str:
    return f"{int(row[0])}\t" + "\t".join(f"{v:.6g}" for v in row[1:]) + "\n"
