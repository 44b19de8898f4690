"""Training: each model takes a step, the phases alternate, and a killed run resumes bit for bit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import (kill_at_first_checkpoint, make_run_dir as make_shared_run_dir, only_checkpoint, run_train,
                      write_params)
from gan import checkpoint
from gan.augment import DiffAugment
from gan.config import parse_params
from gan.losses import LOSSES
from gan.training import Batches, build_state
from gan.updates import g_update, make_plan, train_step

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
    plan = make_plan(cfg, 0, None, torch.device("cpu"))
    stats = train_step(state, plan, Batches(data, kind, torch.device("cpu"), state.index_rng))
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
    d_before = [p.detach().clone() for p in state.discriminator.parameters()]
    g_update(state, make_plan(cfg, 0, None, torch.device("cpu")))
    assert all(torch.equal(a, b) for a, b in zip(d_before, state.discriminator.parameters()))
    assert all(p.grad is None for p in state.discriminator.parameters())
    assert all(p.requires_grad for p in state.discriminator.parameters())


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_generator_steps_raise_the_score_d_gives_the_generators_samples(loss):
    """With D held fixed, G's steps climb D's score: the G loss is minimised, not maximised."""
    _, state, plan, _ = small_state({"data": {"name": "grid25"}, "model": {"arch": "mlp"},
                                     "train": {"loss": loss, "lr_g": 1e-3}}, (2,))
    z = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))

    def mean_fake_score() -> float:
        with torch.no_grad():
            return plan.loss.readout(state.discriminator(state.generator(z))).mean().item()

    before = mean_fake_score()
    for _ in range(20):
        g_update(state, plan)
    assert mean_fake_score() > before


RESUME_PARAMS = {
    "data": {"name": "grid25", "num_points": 2000},
    "model": {"arch": "mlp", "width": 32, "latent_dim": 2},
    "train": {"steps": 600, "batch_size": 32, "checkpoint_every": 25, "sample_every": 10_000, "log_every": 25,
              "eval_every": 100, "eval_samples": 200},
}


def make_run_dir(path: Path) -> Path:
    return make_shared_run_dir(path, RESUME_PARAMS)


@pytest.mark.system
def test_a_killed_run_resumes_and_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    straight = make_run_dir(tmp_path / "straight")
    assert run_train(straight).returncode == 0

    crashed = make_run_dir(tmp_path / "crashed")
    killed_at = kill_at_first_checkpoint(crashed, RESUME_PARAMS["train"]["steps"])

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
    assert scores[0] == "step\tmodes_captured_200\thigh_quality_pct_200\treverse_kl_200\tspread_ratio_200\temd_200"
    assert len(scores) == 8
    # MLflow holds every step of the resumed run once, with the values of the uninterrupted run
    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    curves = [client.get_metric_history(json.loads((d / "reports/train/run.json").read_text())["run_id"], "loss_d")
              for d in (straight, crashed)]
    steps = [sorted(m.step for m in curve) for curve in curves]
    assert steps[0] == steps[1] == list(range(1, RESUME_PARAMS["train"]["steps"] + 1))
    assert sorted((m.step, m.value) for m in curves[0]) == sorted((m.step, m.value) for m in curves[1])


def test_a_checkpoint_of_other_params_is_not_resumed(tmp_path):
    directory = make_run_dir(tmp_path / "run")
    write_params(directory, {**RESUME_PARAMS, "train": {**RESUME_PARAMS["train"], "steps": 50}})
    assert run_train(directory).returncode == 0
    write_params(directory, {**RESUME_PARAMS, "train": {**RESUME_PARAMS["train"], "steps": 50, "lr_g": 1e-3}})
    second = run_train(directory)
    assert second.returncode == 0 and "from scratch" in second.stdout
    assert len(list((directory / "checkpoints").glob("*/last.pt"))) == 2  # both runs keep their own


def test_a_truncated_checkpoint_falls_back_to_the_previous_one_and_ends_the_same(tmp_path):
    directory = make_run_dir(tmp_path / "run")
    write_params(directory, {**RESUME_PARAMS, "train": {**RESUME_PARAMS["train"], "steps": 30}})
    assert run_train(directory).returncode == 0
    expected = torch.load(directory / "models/generator.pt", weights_only=True)["state_dict"]
    ckpt = only_checkpoint(directory)
    assert checkpoint.load(ckpt.with_name("prev.pt"), "checkpoint", "")["step"] == 25
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # a torn write, a bad disk
    result = run_train(directory)
    assert result.returncode == 0, result.stderr
    assert "last.pt is unreadable" in result.stdout and "resuming from the previous checkpoint prev.pt (step 25)" \
        in result.stdout and "resuming at step 25" in result.stdout
    again = torch.load(directory / "models/generator.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(expected[k], again[k]) for k in expected)
    assert checkpoint.load(ckpt, "checkpoint", "")["step"] == 30


def test_unreadable_checkpoints_are_a_clear_error_and_are_left_in_place(tmp_path):
    directory = make_run_dir(tmp_path / "run")
    write_params(directory, {**RESUME_PARAMS, "train": {**RESUME_PARAMS["train"], "steps": 30}})
    assert run_train(directory).returncode == 0
    ckpt = only_checkpoint(directory)
    for path in (ckpt, ckpt.with_name("prev.pt")):
        path.write_bytes(b"not a checkpoint")
    result = run_train(directory)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot read the training checkpoint" in result.stderr and "prev.pt" in result.stderr
    assert ckpt.read_bytes() == ckpt.with_name("prev.pt").read_bytes() == b"not a checkpoint"


def test_a_checkpointed_state_continues_exactly_with_augmentation_ema_and_penalties(tmp_path):
    """The in-process half of exact resume: every RNG and average the step draws on is in the checkpoint."""
    overrides = {"train": {"loss": "wasserstein", "augment": ["color", "translation", "cutout"],
                           "ema_half_life_images": 100.0, "r1_weight": 1.0, "r1_interval": 2},
                 "model": {"spectral_norm": True}}  # WGAN-GP needs a D without batch norm

    def start():  # fresh networks, optimisers and RNGs, as a restarted process builds them
        cfg, state, _, batches = small_state(overrides, (28, 28, 1))
        return state, make_plan(cfg, 0, DiffAugment(cfg.train.augment, state.augment_rng), torch.device("cpu")), batches

    def run(setup, steps):
        return [train_step(*setup) for _ in range(steps)]

    straight = start()
    run(straight, 3)
    checkpoint.save_atomic(straight[0].to_dict({"test": True}), tmp_path / "last.pt")
    expected = run(straight, 3)
    resumed = start()
    resumed[0].load_dict(checkpoint.load(tmp_path / "last.pt", "checkpoint", ""))
    got = run(resumed, 3)
    assert all(torch.equal(a[k], b[k]) for a, b in zip(expected, got) for k in a)
    for name in ("generator", "discriminator"):
        a, b = getattr(straight[0], name).state_dict(), getattr(resumed[0], name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    a, b = straight[0].ema.model.state_dict(), resumed[0].ema.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed[0].step == 6


ARCH_DATA = {"mlp": ({"data": {"name": "grid25"}}, (2,)), "dcgan": ({}, (28, 28, 1)),
             "resnet": ({"data": {"image_size": 32}}, (32, 32, 3))}


def small_state(overrides: dict, shape: tuple[int, ...], num_classes: int = 0, augment=None):
    model = {"latent_dim": 8, "width": 8, **overrides.get("model", {})}
    cfg = parse_params({**overrides, "model": model, "train": {"batch_size": 8, **overrides.get("train", {})}})
    state = build_state(cfg, shape, torch.device("cpu"), num_classes)
    data, kind = fake_data(shape)
    labels = torch.arange(len(data)) % num_classes if num_classes else None
    batches = Batches(data, kind, torch.device("cpu"), state.index_rng, labels)
    return cfg, state, make_plan(cfg, num_classes, augment, torch.device("cpu")), batches


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("arch", sorted(ARCH_DATA))
def test_every_architecture_trains_with_every_loss(arch, loss):
    overrides, shape = ARCH_DATA[arch]
    _, state, plan, batches = small_state({**overrides, "model": {"arch": arch,
                                           "spectral_norm": arch == "resnet" or loss == "wasserstein"},
                                           "train": {"loss": loss}}, shape)
    before = [p.detach().clone() for p in state.generator.parameters()]
    for _ in range(2):
        stats = train_step(state, plan, batches)
    assert all(torch.isfinite(v) for v in stats.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, state.generator.parameters()))


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_the_discriminator_learns_to_score_reals_above_the_generators_samples(loss):
    """Reals around (4, 4), far from the untrained G's samples near the origin: whatever the
    untrained D thought, after some steps it must rank reals above fakes, in its own scores and in
    the logged means. A D step that fed fakes as reals (or swapped them in the loss) ranks them the
    other way round."""
    _, state, plan, _ = small_state({"data": {"name": "grid25"}, "model": {"arch": "mlp", "latent_components": 0},
                                     "train": {"loss": loss, "lr_d": 1e-3}}, (2,))
    reals = 4 + 0.1 * torch.randn(256, 2, generator=torch.Generator().manual_seed(0))  # (256, 2)
    batches = Batches(reals.numpy(), "points", torch.device("cpu"), state.index_rng)
    z = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))

    def mean_scores() -> tuple[float, float]:  # mean D(x), mean D(G(z)), read as the log reads them
        with torch.no_grad():
            readout = plan.loss.readout
            return (readout(state.discriminator(reals)).mean().item(),
                    readout(state.discriminator(state.generator(z))).mean().item())

    real_before, fake_before = mean_scores()
    for _ in range(200):
        stats = train_step(state, plan, batches)
    real_after, fake_after = mean_scores()
    assert real_after > fake_after and real_after - fake_after > real_before - fake_before
    assert stats["d_real"] > stats["d_fake"]


class CountingAugment:
    """A DiffAugment stand-in that records the batches it is shown and keeps them differentiable."""

    def __init__(self):
        self.calls: list[bool] = []

    def __call__(self, x):
        self.calls.append(x.requires_grad)
        return x.flip(3)


def test_augmentation_sees_reals_and_fakes_in_the_d_step_and_fakes_in_the_g_step_with_gradients_to_g():
    augment = CountingAugment()
    _, state, plan, batches = small_state({}, (28, 28, 1), augment=augment)
    train_step(state, plan, batches)
    # D step: reals, then fakes made without a graph; G step: fakes that carry G's graph
    assert augment.calls == [False, False, True]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in state.generator.parameters()
               if p.requires_grad and p.dim() > 1)


def test_packing_shows_d_groups_of_samples():
    _, state, plan, batches = small_state({"data": {"name": "grid25"}, "model": {"arch": "mlp"},
                                           "train": {"pack": 4}}, (2,))
    seen = []
    state.discriminator.register_forward_hook(lambda m, args, out: seen.append((args[0].shape, out.shape)))
    train_step(state, plan, batches)
    assert seen and all(inp == (2, 8) and out == (2,) for inp, out in seen)


def test_conditional_training_samples_the_asked_classes_one_row_each():
    cfg, state, plan, batches = small_state({"model": {"conditional": True}, "generate": {"grid_rows": 3}},
                                            (28, 28, 1), num_classes=10)
    train_step(state, plan, batches)
    assert state.fixed_y.tolist() == [c for c in range(10) for _ in range(3)]
    grid = state.sample(state.fixed_z, state.fixed_y)
    assert grid.shape == (30, 1, 28, 28)
    z = state.fixed_z[:1].repeat(10, 1)
    per_class = state.sample(z, torch.arange(10))
    assert not torch.allclose(per_class[0], per_class[1])  # the class changes the sample


def test_lazy_r1_adds_a_d_update_every_interval():
    _, state, plan, batches = small_state({"train": {"r1_weight": 1.0, "r1_interval": 2}}, (28, 28, 1))
    for _ in range(4):
        train_step(state, plan, batches)
    assert state.opt_d.state_dict()["state"][0]["step"] == 4 + 2  # four D steps, R1 at steps 0 and 2



def test_the_mmd_term_adds_to_gs_loss_and_is_reported_beside_the_adversarial_term():
    _, state, plan, batches = small_state({"data": {"name": "grid25"}, "model": {"arch": "mlp"},
                                           "train": {"mmd_weight": 2.0, "mmd_bandwidths": [0.5, 1.0]}}, (2,))
    stats = train_step(state, plan, batches)
    assert set(stats) == {"loss_d", "loss_g", "d_real", "d_fake", "loss_adversarial", "loss_mmd"}
    assert float(stats["loss_mmd"]) > 0  # the untrained G is far from the data
    assert float(stats["loss_g"]) == pytest.approx(float(stats["loss_adversarial"] + 2.0 * stats["loss_mmd"]),
                                                   rel=1e-5)

def test_the_ema_generator_is_the_one_sampled():
    _, state, plan, batches = small_state({"train": {"ema_half_life_images": 100.0}}, (28, 28, 1))
    train_step(state, plan, batches)
    assert state.sampler is state.ema.model and state.sampler is not state.generator
    trained = dict(state.generator.named_parameters())
    assert any(not torch.equal(p, trained[n]) for n, p in state.ema.model.named_parameters())


def test_learning_rates_fall_linearly_to_zero_after_the_decay_start():
    cfg = parse_params({"data": {"name": "grid25"}, "model": {"arch": "mlp", "width": 8, "latent_dim": 2},
                        "train": {"steps": 8, "batch_size": 8, "lr_g": 0.004, "lr_d": 0.002,
                                  "lr_decay_start": 0.5}})
    state = build_state(cfg, (2,), torch.device("cpu"))
    plan = make_plan(cfg, 0, None, torch.device("cpu"))
    batches = Batches(*fake_data((2,)), torch.device("cpu"), state.index_rng)
    seen = []
    for _ in range(8):
        train_step(state, plan, batches)
        seen += [state.opt_g.param_groups[0]["lr"], state.opt_d.param_groups[0]["lr"]]
    factors = [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]  # updates 5..8 run at (8 - step) / 4 of the base rates
    assert seen == pytest.approx([x for f in factors for x in (0.004 * f, 0.002 * f)])
