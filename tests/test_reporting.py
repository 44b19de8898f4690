"""The offline picture of the training curves (reports/train/curves.png)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gan.reporting import save_curves


def _history(steps: int) -> list[list[float]]:
    rng = np.random.default_rng(0)
    return [[float(s), 1.3 + rng.normal(0, .1), .7 + rng.normal(0, .1), .6, .4] for s in range(1, steps + 1)]


def test_curves_have_a_panel_for_losses_d_outputs_and_each_training_score(tmp_path):
    bare, scored = tmp_path / "bare.png", tmp_path / "scored.png"
    save_curves(_history(400), [], [], bare)
    save_curves(_history(400), [[0, 2400.0, 10.0], [200, 90.0, 1.0], [400, 31.0, 0.5]],
                ["fid_domain_1k", "reverse_kl_1k"], scored)
    bare_w, bare_h = Image.open(bare).size
    scored_w, scored_h = Image.open(scored).size
    assert scored_h == bare_h
    assert abs(scored_w / bare_w - 4 / 2) < 0.05, "two score columns add two panels to the two of losses and D"
    pixels = np.asarray(Image.open(scored).convert("L"))
    assert pixels.std() > 10, "the figure has content, not a blank canvas"


def test_curves_of_a_run_too_short_to_smooth(tmp_path):
    path = tmp_path / "curves.png"
    save_curves(_history(3), [[0, 50.0]], ["fid_domain_1k"], path)
    assert Image.open(path).size[0] > 0
