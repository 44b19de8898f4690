"""benchmarks/train_step.py: both sides train the same networks, and the figures it prints add up."""

from __future__ import annotations

import re
import subprocess
import sys

import torch
import yaml

from conftest import ROOT, benchmark_script


def test_the_plain_loop_trains_the_project_s_networks():
    bench = benchmark_script("train_step")
    from gan.config import parse_params
    from gan.training import build_state

    cfg = parse_params(yaml.safe_load((ROOT / "params.yaml").read_text()))
    shape, device = (28, 28, 1), torch.device("cpu")
    images = torch.rand(16, 1, 28, 28) * 2 - 1
    plain = bench.PlainLoop(cfg, shape, images, device)
    state = build_state(cfg, shape, device)
    for ours, theirs in ((state.generator, plain.G), (state.discriminator, plain.D)):
        assert [p.shape for p in ours.parameters()] == [p.shape for p in theirs.parameters()]
    before = [p.detach().clone() for p in (*plain.G.parameters(), *plain.D.parameters())]
    plain.step()
    after = [*plain.G.parameters(), *plain.D.parameters()]
    assert all(not torch.equal(a, b) for a, b in zip(before, after))  # both optimisers stepped every weight


def test_the_benchmark_prints_img_per_second_of_both_sides_and_their_ratio():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--steps", "2",
                          "--repeats", "1", "--warmup", "1", "--threads", "1"],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    ours = float(re.search(r"project train_step:\s+([\d.]+) img/s", out.stdout).group(1))
    plain = float(re.search(r"plain loop:\s+([\d.]+) img/s", out.stdout).group(1))
    ratio = float(re.search(r"ratio project / plain: ([\d.]+)x", out.stdout).group(1))
    assert ours > 0 and plain > 0
    assert abs(ratio - ours / plain) <= 0.01 + 1e-3 * ratio
