"""Several training processes (train.processes, torchrun, gloo on the CPU): gradients are averaged, not
assumed; runs are reproducible and resume bit for bit at the same world size; `dvc repro` and parallel
queue workers land in one MLflow store without oversubscribing the cores."""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import (
    copy_repository,
    drain_queue,
    dvc,
    kill_at_first_checkpoint,
    make_run_dir,
    only_checkpoint,
    run_train,
)
from mlflow.tracking import MlflowClient

from gan.config import parse_params
from gan.distributed import SINGLE, World
from gan.errors import UserError
from gan.training import build_state
from gan.updates import d_update_on, make_plan

POINTS = {"data": {"name": "grid25", "num_points": 2000},
          "model": {"arch": "mlp", "width": 32, "latent_dim": 2, "d_activation": "leaky_relu"}}
BATCH = 64


def _d_update(world: World) -> dict[str, torch.Tensor]:
    """One D update of an MLP (no batch norm in D) on this rank's share of a fixed batch; D's gradients,
    weights after the Adam step and the averaged stats."""
    cfg = parse_params({**POINTS, "train": {"batch_size": BATCH}})
    state = build_state(cfg, (2,), torch.device("cpu"), world=world)
    plan = make_plan(cfg, 0, None, torch.device("cpu"), world)
    data = torch.Generator().manual_seed(7)
    real, fake = torch.randn(BATCH, 2, generator=data), torch.randn(BATCH, 2, generator=data) * 0.5
    share = slice(world.rank * plan.batch_size, (world.rank + 1) * plan.batch_size)
    stats = world.average_stats(d_update_on(state, plan, real[share], None, fake[share], None))
    named = state.discriminator.named_parameters()
    return {**{f"grad.{n}": p.grad.clone() for n, p in named}, **{f"weight.{n}": p.detach().clone()
            for n, p in state.discriminator.named_parameters()}, **{f"stat.{k}": v for k, v in stats.items()}}


def _rank(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.save(_d_update(World(rank, 2, rank, 2)), f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_a_d_update_on_two_processes_equals_one_process_on_the_whole_batch(tmp_path):
    torch.set_num_threads(1)
    single = _d_update(SINGLE)
    mp.spawn(_rank, args=(str(tmp_path / "store"), str(tmp_path / "out")), nprocs=2)
    ranks = [torch.load(tmp_path / f"out.{r}", weights_only=True) for r in range(2)]
    assert set(ranks[0]) == set(single) and any(k.startswith("grad.") for k in single)
    for key, expected in single.items():
        for r, got in enumerate(ranks):
            torch.testing.assert_close(got[key], expected, rtol=1e-5, atol=1e-7, msg=f"rank {r}: {key}")


def test_the_global_batch_must_split_evenly_over_the_processes():
    with pytest.raises(UserError, match=r"train.batch_size \(30\) is the global batch and must split evenly over"):
        parse_params({**POINTS, "train": {"batch_size": 30, "processes": 4}})
    with pytest.raises(UserError, match="must split evenly over the 3 training processes"):
        World(0, 3).share(64)


def test_the_thread_budget_is_shared_among_the_training_processes_of_a_machine(monkeypatch):
    from gan.runtime import torch_threads

    monkeypatch.setenv("GAN_THREADS", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert torch_threads() == 2  # GAN_THREADS is the stage's budget, not each worker's
    monkeypatch.delenv("GAN_THREADS")
    assert torch_threads() == max(1, len(os.sched_getaffinity(0)) // 2)
    monkeypatch.setenv("GAN_THREADS", "0")
    with pytest.raises(UserError, match="GAN_THREADS='0' must be a whole number of threads >= 1"):
        torch_threads()


RUN = {**POINTS, "train": {"steps": 300, "batch_size": 32, "checkpoint_every": 25, "sample_every": 10_000,
                           "log_every": 25, "eval_every": 100, "eval_samples": 200, "processes": 2}}


@pytest.mark.system
def test_a_two_process_run_is_reproducible_and_a_killed_one_resumes_bit_exactly(tmp_path):
    straight = make_run_dir(tmp_path / "straight", RUN)
    done = run_train(straight, in_process=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 processes of 16 samples" in done.stdout

    crashed = make_run_dir(tmp_path / "crashed", RUN)
    killed_at = kill_at_first_checkpoint(crashed, RUN["train"]["steps"])
    resumed = run_train(crashed, in_process=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at step {killed_at}" in resumed.stdout

    a, b = (torch.load(d / "models/generator.pt", weights_only=True)["state_dict"] for d in (straight, crashed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (straight / "reports/train/history.tsv").read_text() == (crashed / "reports/train/history.tsv").read_text()
    saved = torch.load(only_checkpoint(straight), weights_only=True)
    ranks = saved["rank_rng"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["generators"][0], ranks[1]["generators"][0]), \
        "each process draws its own batches"
    run_id = json.loads((straight / "reports/train/run.json").read_text())["run_id"]
    tags = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_run(run_id).data.tags
    assert tags["distributed.world_size"] == "2"


@pytest.mark.system
def test_a_run_at_another_world_size_starts_afresh(tmp_path):
    """The checkpoint of a 2-process run is not resumed by 1 process: its RNG streams are per rank."""
    directory = make_run_dir(tmp_path / "run", {**RUN, "train": {**RUN["train"], "steps": 50}})
    assert run_train(directory, in_process=False).returncode == 0
    params = directory / "params.yaml"
    params.write_text(params.read_text().replace("processes: 2", "processes: 1"))
    single = run_train(directory, in_process=False)
    assert single.returncode == 0, single.stderr[-3000:]
    assert "from scratch" in single.stdout and len(list((directory / "checkpoints").glob("*/last.pt"))) == 2


@pytest.mark.system
def test_dvc_repro_on_two_processes_and_two_queue_workers_log_to_one_store(tmp_path):
    params = {**RUN, "train": {**RUN["train"], "steps": 150, "checkpoint_every": 50, "eval_every": 0},
              "generate": {"num_samples": 1000}, "evaluate": {"num_samples": 1000}}
    root, env = copy_repository(tmp_path, params)
    dvc(root, env, "repro")
    store = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (run,) = store.search_runs([store.get_experiment_by_name("gan").experiment_id])
    assert run.data.tags["distributed.world_size"] == "2" and "eval/modes_captured_1k" in run.data.metrics

    for lr in ("0.0001", "0.0003"):
        dvc(root, env, "exp", "run", "--queue", "-n", f"lr-{lr}", "-S", "train.processes=1", "-S", f"train.lr_g={lr}")
    status = drain_queue(root, {**env, "GAN_THREADS": "1"}, ["lr-0.0001", "lr-0.0003"], jobs=2)
    assert status.count("Success") == 2, status + dvc(root, env, "queue", "logs", "lr-0.0001", ok=False).stdout
    runs = store.search_runs([store.get_experiment_by_name("gan").experiment_id])
    queued = {r.data.tags.get("dvc.exp_name"): r for r in runs if r.data.tags.get("dvc.exp_name")}
    assert set(queued) == {"lr-0.0001", "lr-0.0003"}
    for name, r in queued.items():
        assert r.info.status == "FINISHED" and r.data.params["train.lr_g"] == name.split("-")[1]
        assert r.data.tags["runtime.threads"] == "1", "GAN_THREADS reaches the queue workers' stages"
        assert "eval/modes_captured_1k" in r.data.metrics
