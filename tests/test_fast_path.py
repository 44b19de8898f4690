"""The fast path that CUDA runs, run here on the CPU: bf16 autocast with channels_last, torch.compile,
no host sync in the step, checkpoints that no device ties down, and precision flags set explicitly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import make_run_dir, run_stage
from torch.utils._python_dispatch import TorchDispatchMode

from gan import checkpoint
from gan.config import parse_params
from gan.data.datasets import DATASETS
from gan.errors import UserError
from gan.metrics.frechet import frechet_distance, gaussian_stats
from gan.runtime import make_deterministic, resolve_device
from gan.training import Batches, build_state
from gan.updates import make_plan, resolve_precision, train_step

CPU = torch.device("cpu")
DEVICES = [CPU] + ([torch.device("cuda")] if torch.cuda.is_available() else [])


class HostTraffic(TorchDispatchMode):
    """Records what would stall a GPU: a tensor read back on the host (item, bool, tolist), an op whose tensors
    live on more than one device (an implicit copy), and a random draw from a generator of another device."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = str(func)
        if "_local_scalar_dense" in name:
            self.found.append(f"{name}: a value read back on the host")
        tensors = [t for t in (*args, *kwargs.values(), *(out if isinstance(out, (tuple, list)) else [out]))
                   if isinstance(t, torch.Tensor)]
        if len({t.device for t in tensors}) > 1:
            self.found.append(f"{name}: tensors on {sorted(str(t.device) for t in tensors)}")
        gen = kwargs.get("generator")
        if gen is not None and isinstance(out, torch.Tensor) and gen.device != out.device:
            self.found.append(f"{name}: drawn from a {gen.device} generator for a {out.device} tensor")
        return out


STEP_CASES = {
    "dcgan-everything": {"model": {"conditional": True, "width": 8},
                         "train": {"augment": ["color", "translation", "cutout"], "r1_weight": 1.0, "r1_interval": 1,
                                   "ema_half_life_images": 500.0, "lr_decay_start": 0.0, "steps": 10,
                                   "batch_size": 8, "d_steps": 2}},
    "mlp-points-gradient-penalty": {"data": {"name": "grid25"}, "model": {"arch": "mlp", "width": 16},
                                    "train": {"loss": "wasserstein", "batch_size": 8}},
}


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("case", sorted(STEP_CASES))
def test_a_training_step_reads_nothing_back_to_the_host_and_mixes_no_devices(case, device):
    cfg = parse_params(STEP_CASES[case])
    images = cfg.model.arch == "dcgan"
    shape, classes = ((28, 28, 1), 10) if images else ((2,), 0)
    gen = torch.Generator().manual_seed(0)
    data = (torch.randint(0, 256, (64, *shape), generator=gen, dtype=torch.uint8) if images
            else torch.randn(64, *shape, generator=gen))
    state = build_state(cfg, shape, device, classes)
    batches = Batches(data.numpy(), "images" if images else "points", device, state.index_rng,
                      torch.arange(64) % 10 if classes else None)
    from gan.augment import DiffAugment

    augment = DiffAugment(cfg.train.augment, state.augment_rng) if cfg.train.augment else None
    plan = make_plan(cfg, classes, augment, device)
    train_step(state, plan, batches)  # lazily created optimiser state, first-call paths
    with HostTraffic() as traffic:
        for _ in range(2):
            train_step(state, plan, batches)
    assert traffic.found == []
    assert {g.device.type for g in state.rngs} == {device.type}


def test_the_host_traffic_check_catches_a_read_back_a_device_mix_and_a_foreign_generator():
    """The check above can fail: the meta device stands in for a GPU."""
    with HostTraffic() as traffic:
        torch.ones(2).sum().item()
        torch.ones(2, device="meta") + torch.tensor(1.0)  # a CPU scalar mixed in: an implicit copy on a GPU
        torch.randn(3, generator=torch.Generator(), device="meta")  # Batches.draw's old CPU index RNG
    assert [f.split(":", 1)[1].strip().split(" ")[0] for f in traffic.found] == ["a", "tensors", "drawn"], traffic.found


def test_precision_auto_is_bf16_for_conv_nets_on_cuda_only_and_bf16_is_refused_for_points():
    dcgan, mlp = parse_params({}), parse_params({"model": {"arch": "mlp"}})
    assert resolve_precision(dcgan, torch.device("cuda")) == "bf16"
    assert resolve_precision(dcgan, CPU) == "fp32"
    assert resolve_precision(mlp, torch.device("cuda")) == "fp32"
    assert resolve_precision(parse_params({"train": {"precision": "bf16"}}), CPU) == "bf16"
    with pytest.raises(UserError, match="train.precision=bf16 rounds 2-D coordinates"):
        parse_params({"data": {"name": "grid25"}, "model": {"arch": "mlp"}, "train": {"precision": "bf16"}})
    with pytest.raises(UserError, match="train.mixed_precision was replaced by train.precision"):
        parse_params({"train": {"mixed_precision": True}})


def test_fp32_is_ieee_fp32_and_determinism_follows_the_device_of_the_latest_run():
    torch.backends.cuda.matmul.fp32_precision = "tf32"
    resolve_device("cpu")
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    make_deterministic(0, CPU)
    assert torch.are_deterministic_algorithms_enabled()
    make_deterministic(0, torch.device("cuda"))  # sets flags only; no GPU needed
    try:
        assert not torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.benchmark
    finally:
        make_deterministic(0, CPU)


def _pixel_fid(fake: torch.Tensor, real: np.ndarray) -> float:
    """Fréchet distance of 7x7 average-pooled pixels: crude, but it falls as G learns digits."""
    def pooled(x: torch.Tensor) -> np.ndarray:
        return torch.nn.functional.avg_pool2d(x.float(), 4).flatten(1).numpy().astype(np.float64)

    real_t = torch.as_tensor(real).permute(0, 3, 1, 2).float() / 127.5 - 1
    return frechet_distance(*gaussian_stats(pooled(fake)), *gaussian_stats(pooled(real_t)))


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.system)], ids=["eager", "compiled"])
def test_bf16_training_on_the_cpu_keeps_losses_finite_and_improves_the_score(compiled):
    """bf16 autocast and channels_last, the path CUDA takes by default, trained here; with torch.compile too."""
    cfg = parse_params({"model": {"width": 16}, "train": {"precision": "bf16", "compile": compiled,
                                                          "batch_size": 32, "lr_g": 5e-4, "lr_d": 5e-4}})
    split = DATASETS["mnist5k"].load(cfg.data, 0)
    state = build_state(cfg, (28, 28, 1), CPU)
    plan = make_plan(cfg, 0, None, CPU)
    assert plan.precision == "bf16" and plan.channels_last
    assert state.generator.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    batches = Batches(split.train_x, "images", CPU, state.index_rng)
    z = torch.randn(500, cfg.model.latent_dim, generator=torch.Generator().manual_seed(3))

    def score() -> float:
        return _pixel_fid(state.sample(z), split.test_x[:500])

    before = score()
    losses = [train_step(state, plan, batches) for _ in range(150)]
    assert all(torch.isfinite(v).all() for s in losses for v in s.values())
    assert all(p.dtype == torch.float32 for p in state.generator.parameters()), "master weights stay fp32"
    after = score()
    assert after < 0.5 * before, (before, after)


def test_a_checkpoint_written_on_cuda_resumes_under_train_device_cpu(tmp_path):
    """A CUDA machine's generators have 16-byte Philox states; the CPU's cannot take them. The resume reseeds
    those streams (saying so) instead of failing, and the run finishes."""
    params = {"data": {"name": "grid25", "num_points": 2000}, "model": {"arch": "mlp", "width": 16, "latent_dim": 2},
              "train": {"steps": 60, "batch_size": 32, "checkpoint_every": 30, "sample_every": 10_000,
                        "log_every": 10, "eval_every": 0, "device": "cpu"}}
    directory = make_run_dir(tmp_path / "run", params)
    first = run_stage("train", directory)
    assert first.returncode == 0, first.stderr[-2000:]
    (ckpt,) = directory.glob("checkpoints/*/last.pt")
    saved = torch.load(ckpt, weights_only=True)
    assert "cuda" not in saved["rng"], "no global CUDA RNG state is kept"
    for entry in (saved["rng"], *saved["rank_rng"]):  # what a CUDA machine writes
        entry["generators"] = [torch.zeros(16, dtype=torch.uint8) for _ in entry["generators"]]
        entry["devices"] = ["cuda"] * len(entry["generators"])
    saved["step"] = 30
    saved["history"] = saved["history"][:30]
    checkpoint.save_checkpoint(saved, ckpt)
    (ckpt.parent / checkpoint.PREVIOUS).unlink(missing_ok=True)
    shutil.rmtree(directory / "models" / "generator.pt", ignore_errors=True)
    resumed = run_stage("train", directory)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming at step 30" in resumed.stdout
    assert "random streams were drawn on cuda and this run draws on cpu" in resumed.stdout
