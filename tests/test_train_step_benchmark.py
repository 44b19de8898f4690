"""benchmarks/train_step.py: both sides train the same networks, and the figures it prints add up."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
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


def _figures(*options: str) -> tuple[dict[str, float], float]:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_step.py"), "--steps", "2",
                          "--repeats", "1", "--warmup", "1", "--threads", "2", *options],
                         capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr
    sides = {m.group(1): (float(m.group(2)), float(m.group(3)))
             for m in re.finditer(r"^(\S.*?)\s{2,}([\d.]+) img/s\s+[\d.]+ ms/step\s+([\d.]+)x", out.stdout, re.M)}
    ratio = float(re.search(r"ratio project / plain fp32: ([\d.]+)x", out.stdout).group(1))
    baseline = sides["plain loop, fp32"][0]
    for ips, relative in sides.values():  # each side's ratio is its img/s over the plain fp32 loop's
        assert ips > 0 and abs(relative - ips / baseline) <= 0.01 + 1e-3 * relative
    return {name: ips for name, (ips, _) in sides.items()}, ratio


@pytest.mark.system
def test_the_benchmark_prints_img_per_second_of_both_sides_and_their_ratio():
    sides, ratio = _figures()
    assert set(sides) == {"plain loop, fp32", "project, fp32"}
    assert abs(ratio - sides["project, fp32"] / sides["plain loop, fp32"]) <= 0.01 + 1e-3 * ratio


@pytest.mark.system
def test_the_benchmark_times_bf16_on_both_sides_and_the_project_on_two_processes():
    sides, _ = _figures("--precision", "bf16")
    assert set(sides) == {"plain loop, fp32", "plain loop, bf16", "project, bf16"}
    sides, ratio = _figures("--processes", "2")
    assert set(sides) == {"plain loop, fp32", "project, fp32, 2 processes x 1 threads"}
