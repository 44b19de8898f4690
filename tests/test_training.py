"""Training: each model takes a step, the phases alternate, and a killed run resumes bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from conftest import stage_command, write_params
from gan import checkpoint
from gan.config import parse_params
from gan.data import prepare
from gan.features import build_evaluator
from gan.training import Batches, build_state, losses, train_step

CASES = {
    "mlp-points": ({"data": {"name": "grid25"}, "model": {"arch": "mlp"}}, (2,)),
    "mlp-images": ({"model": {"arch": "mlp"}}, (28, 28, 1)),
    "dcgan-28": ({}, (28, 28, 1)),
    "dcgan-32": ({"data": {"image_size": 32}}, (32, 32, 3)),
    "dcgan-64": ({"data": {"image_size": 64}, "model": {"width": 8}}, (64, 64, 3)),
}


def fake_data(shape: tuple[int, ...], count: int = 32):
    gen = torch.Generator().manual_seed(0)
    if len(shape) == 1:
        return torch.randn(count, *shape, generator=gen).numpy(), "points"
    return torch.randint(0, 256, (count, *shape), generator=gen, dtype=torch.uint8).numpy(), "images"


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_training_step_updates_generator_and_discriminator(case):
    overrides, shape = CASES[case]
    cfg = parse_params({**overrides, "train": {"batch_size": 8, "d_steps": 2}, "model": {
        **overrides.get("model", {}), "latent_dim": 16, "width": overrides.get("model", {}).get("width", 16)}})
    state = build_state(cfg, shape, torch.device("cpu"))
    data, kind = fake_data(shape)
    before_g = [p.detach().clone() for p in state.generator.parameters()]
    before_d = [p.detach().clone() for p in state.discriminator.parameters()]
    stats = train_step(state, cfg, losses.LOSSES[cfg.train.loss], Batches(data, kind, torch.device("cpu"),
                                                                           state.index_rng))
    assert set(stats) == {"loss_d", "loss_g", "d_real", "d_fake"}
    assert all(torch.isfinite(v) for v in stats.values())
    assert 0 < stats["d_real"] < 1 and 0 < stats["d_fake"] < 1
    assert all(not torch.equal(a, b) for a, b in zip(before_g, state.generator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before_d, state.discriminator.parameters()))
    assert state.opt_d.state_dict()["state"][0]["step"] == 2  # d_steps D updates ...
    assert state.opt_g.state_dict()["state"][0]["step"] == 1  # ... for one G update
    assert state.step == 1


def test_generator_step_leaves_the_discriminator_untouched():
    cfg = parse_params({"data": {"name": "ring8"}, "model": {"arch": "mlp", "width": 16}})
    state = build_state(cfg, (2,), torch.device("cpu"))
    data, kind = fake_data((2,))
    from gan.training import g_update

    d_before = [p.detach().clone() for p in state.discriminator.parameters()]
    g_update(state, losses.LOSSES["nonsaturating"], torch.randn(8, cfg.model.latent_dim))
    assert all(torch.equal(a, b) for a, b in zip(d_before, state.discriminator.parameters()))
    assert all(p.grad is None for p in state.discriminator.parameters())
    assert all(p.requires_grad for p in state.discriminator.parameters())


RESUME_PARAMS = {
    "data": {"name": "grid25", "num_points": 2000},
    "model": {"arch": "mlp", "width": 32, "latent_dim": 2},
    "train": {"steps": 600, "batch_size": 32, "checkpoint_every": 25, "sample_every": 10_000, "log_every": 25,
              "eval_every": 100, "eval_samples": 200},
}


def make_run_dir(path: Path) -> Path:
    path.mkdir()
    write_params(path, RESUME_PARAMS)
    cfg = parse_params(RESUME_PARAMS)
    prepare(cfg, path / "data" / "prepared")
    build_evaluator(cfg, path / "data" / "prepared", path / "models" / "evaluator.pt", path / "features.json")
    return path


def run_train(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(stage_command("train"), cwd=directory, capture_output=True, text=True, timeout=300)


def only_checkpoint(directory: Path) -> Path | None:
    found = list((directory / "checkpoints").glob("*/last.pt"))
    return found[0] if found else None


def test_a_killed_run_resumes_and_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    straight = make_run_dir(tmp_path / "straight")
    assert run_train(straight).returncode == 0

    crashed = make_run_dir(tmp_path / "crashed")
    process = subprocess.Popen(stage_command("train"), cwd=crashed, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while only_checkpoint(crashed) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = checkpoint.load(only_checkpoint(crashed), "checkpoint", "")["step"]
    assert 0 < killed_at < RESUME_PARAMS["train"]["steps"]

    resumed = run_train(crashed)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming at step {killed_at}" in resumed.stdout

    for name in ("models/generator.pt",):
        a = torch.load(straight / name, weights_only=True)["state_dict"]
        b = torch.load(crashed / name, weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    a, b = (torch.load(only_checkpoint(d), weights_only=True) for d in (straight, crashed))
    assert all(torch.equal(a["discriminator"][k], b["discriminator"][k]) for k in a["discriminator"])
    assert torch.equal(a["history"], b["history"]) and len(a["history"]) == RESUME_PARAMS["train"]["steps"]
    for report in ("history.tsv", "eval.tsv"):
        assert (straight / "reports/train" / report).read_text() == (crashed / "reports/train" / report).read_text()
    scores = (straight / "reports/train/eval.tsv").read_text().splitlines()
    assert scores[0] == "step\tmodes_captured_200\thigh_quality_pct_200\treverse_kl_200" and len(scores) == 8


def test_a_checkpoint_of_other_params_is_not_resumed(tmp_path):
    directory = make_run_dir(tmp_path / "run")
    write_params(directory, {**RESUME_PARAMS, "train": {**RESUME_PARAMS["train"], "steps": 50}})
    assert run_train(directory).returncode == 0
    write_params(directory, {**RESUME_PARAMS, "train": {**RESUME_PARAMS["train"], "steps": 50, "lr_g": 1e-3}})
    second = run_train(directory)
    assert second.returncode == 0 and "from scratch" in second.stdout
    assert len(list((directory / "checkpoints").glob("*/last.pt"))) == 2  # both runs keep their own


def test_a_corrupt_checkpoint_is_a_clear_error_and_is_left_in_place(tmp_path):
    directory = make_run_dir(tmp_path / "run")
    write_params(directory, {**RESUME_PARAMS, "train": {**RESUME_PARAMS["train"], "steps": 30}})
    assert run_train(directory).returncode == 0
    ckpt = only_checkpoint(directory)
    ckpt.write_bytes(b"not a checkpoint")
    result = run_train(directory)
    assert result.returncode == 2
    assert "cannot read the training checkpoint" in result.stderr and str(ckpt.name) in result.stderr
    assert ckpt.read_bytes() == b"not a checkpoint"
