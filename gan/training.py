"""The training loop: D and G updated in alternation, with housekeeping every N steps.

The step itself (D with G frozen, lazy R1, G with D frozen, EMA) is in gan.updates. Here
are the state, the data on the device, and the housekeeping around the steps: numbers go to a
Reporter (gan.reporting), never straight to MLflow; grids and scores every N steps; the state
is checkpointed atomically so that a killed run resumes exactly where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Iterator

import torch

from gan import checkpoint, distributed, models, provenance, sampling, tracking
from gan.augment import DiffAugment
from gan.config import Config, fingerprint
from gan.data import content_hash, load_prepared
from gan.divergence import Guard, TrainingDiverged
from gan.ema import EMA
from gan.errors import UserError, one_line
from gan.images import to_tensor
from gan.progress import SCATTER_POINTS, TrainingScore, sample_grid
from gan.reporting import Reporter, save_curves, write_tsv
from gan.distributed import SINGLE, World
from gan.runtime import generator_for, make_deterministic, resolve_device
from gan.state import Batches, State
from gan.tasks import Task, make_task
from gan.updates import Plan, make_plan, train_step, uses_channels_last


@dataclass(frozen=True)
class TrainPaths:
    prepared: Path  # data/prepared
    generator: Path  # models/generator.pt
    checkpoints: Path  # checkpoints/: train's own folder, outside DVC's outputs, so reruns keep it
    reports: Path  # reports/train: history.tsv, eval.tsv, curves.png, run.json, samples/
    evaluator: Path  # models/evaluator.pt, for the scores during training

    @property
    def history(self) -> Path:
        return self.reports / "history.tsv"

    @property
    def eval_history(self) -> Path:
        return self.reports / "eval.tsv"

    @property
    def curves(self) -> Path:
        return self.reports / "curves.png"

    @property
    def run_link(self) -> Path:
        return self.reports / "run.json"

    @property
    def samples(self) -> Path:
        return self.reports / "samples"


def build_state(cfg: Config, data_shape: tuple[int, ...], device: torch.device, num_classes: int = 0,
                world: World = SINGLE, task: Task | None = None, fixed_inputs: torch.Tensor | None = None,
                fixed_condition: torch.Tensor | None = None) -> State:
    """Fresh networks, optimisers and RNGs; `num_classes` > 0 builds a conditional pair.

    `task`: a paired task (gan.tasks) builds its architecture with the keywords the data gives it, and
    its progress pictures use `fixed_inputs` (held-out sources) where generation uses fixed latents;
    text-to-image's use fixed latents beside `fixed_condition` (the prompts' tokens, one per picture).

    Every process of a multi-process run builds the same networks (same seed); its batches,
    latents, augmentations and penalty draws come from RNGs seeded by (seed, rank).
    """
    make_deterministic(cfg.seed, device)
    t = cfg.train
    generator, discriminator = models.build(cfg.model.arch, data_shape, cfg.model.latent_dim, cfg.model.width,
                                            num_classes=num_classes, pack=t.pack,
                                            spectral_norm=cfg.model.spectral_norm, options=cfg.model.options(),
                                            latent_components=cfg.model.latent_components,
                                            task_inputs=task.model_inputs() if task else None)
    layout = torch.channels_last if uses_channels_last(cfg, device) else torch.contiguous_format  # 4-D weights only
    generator.to(device, memory_format=layout).train()
    discriminator.to(device, memory_format=layout).train()
    # fused: one kernel per step, and the step counters stay on the device (the foreach form reads them back)
    opt_g = torch.optim.Adam(generator.parameters(), lr=t.lr_g, betas=t.betas_g, fused=True)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=t.lr_d, betas=t.betas_d, fused=True)
    images, rows = len(data_shape) == 3, cfg.generate.grid_rows
    count = (num_classes or rows) * rows if images else SCATTER_POINTS  # conditional grid: one row per class
    if fixed_condition is not None:
        count = len(fixed_condition)
    fixed_z = sampling.noise(count, cfg.model.latent_dim, generator_for(cfg.seed, "fixed-noise", device), device)
    if fixed_inputs is not None:
        fixed_z = fixed_inputs.to(device)
    fixed_y = fixed_condition.to(device) if fixed_condition is not None else None
    if num_classes:
        fixed_y = (sampling.class_rows(num_classes, rows, device) if images
                   else sampling.balanced_labels(count, num_classes, device))
    ema = None
    if t.ema_half_life_images:
        ema = EMA(generator, t.ema_half_life_images, t.batch_size,
                  calibration=partial(standing_inputs, cfg, num_classes, device))
    # after the EMA copy: the sampler keeps plain batch norm, as only rank 0 samples
    distributed.sync_batch_norm((generator, discriminator), world, device, cfg.model.sync_batchnorm)

    def rng(purpose: str) -> torch.Generator:  # on the device: drawing there needs no host-to-device copy
        return generator_for(cfg.seed, purpose if world.rank == 0 else f"{purpose}@rank{world.rank}", device)

    return State(generator, discriminator, opt_g, opt_d, rng("batches"), rng("noise"), rng("augment"),
                 rng("penalty"), fixed_z, fixed_y, ema, world=world,
                 columns=task.columns if task else State.columns)


STANDING_BATCHES = 16  # forward passes behind the EMA generator's batch-norm statistics


def standing_inputs(cfg: Config, num_classes: int, device: torch.device) -> Iterator[tuple[torch.Tensor, Any]]:
    """The latents (and classes) the EMA generator's BN statistics are computed on: the same every time."""
    rng = generator_for(cfg.seed, "standing-statistics", device)
    for _ in range(STANDING_BATCHES):
        z = sampling.noise(cfg.train.batch_size, cfg.model.latent_dim, rng, device)
        y = torch.randint(num_classes, (cfg.train.batch_size,), generator=rng, device=device) if num_classes else None
        yield z, y


def _prompt_tokens(cfg: Config, meta: dict[str, Any]) -> torch.Tensor:
    """The progress pictures' captions: each of generate.prompts, grid_rows times (one row per prompt)."""
    from gan import text

    tokens = text.tokenize(list(cfg.generate.prompts), int(meta["text"]["max_len"]))
    return tokens.repeat_interleave(cfg.generate.grid_rows, 0)


def run_fingerprint(cfg: Config, data_sha256: str, world_size: int = 1) -> dict[str, Any]:
    """What makes two runs the same run: a checkpoint resumes only under an equal fingerprint.

    That is the params train reads, the data, and the code: the digest of every gan/ file that
    training imports, so that after any edit of that code (a bug fix in a loss, a model, the loop)
    the run starts from step 0 instead of republishing what the old code trained. The number of
    processes is in it too (several nodes make it more than train.processes): each rank has its
    own RNG streams, so a run resumes only at the world size that wrote it.
    """
    return {**fingerprint(cfg, ("task", "model", "train")), "grid_rows": cfg.generate.grid_rows,
            "data_sha256": data_sha256, "code_sha256": provenance.code_digest(__name__), "world_size": world_size}


def checkpoint_path(paths: TrainPaths, run_fp: dict[str, Any]) -> Path:
    """One folder per fingerprint, so switching params back and forth never resumes the wrong run."""
    digest = hashlib.sha256(json.dumps(run_fp, sort_keys=True).encode()).hexdigest()[:12]
    return paths.checkpoints / digest / "last.pt"


def try_resume(state: State, ckpt: Path, run_fp: dict[str, Any]) -> bool:
    """Load the checkpoint of this fingerprint, or the previous one beside it when the last is unreadable.

    Every rank loads the same file; rank 0 alone clears the temp files a killed write left.
    """
    if state.world.main:
        checkpoint.remove_stale_temps(ckpt)
    state.world.barrier()
    loaded = checkpoint.load_checkpoint(ckpt, "training checkpoint", "run `dvc repro train` to start afresh")
    if loaded is None:
        return False
    saved, note = loaded
    if saved["fingerprint"] != json.dumps(run_fp, sort_keys=True):
        return False
    if note and state.world.main:
        print(f"train: {note}")
    state.load_dict(saved)
    if state.resume_note and state.world.main:
        print(f"train: {state.resume_note}")
    return True


def train(cfg: Config, paths: TrainPaths) -> dict[str, Any]:
    """Train G and D as params.yaml says, resuming from a matching checkpoint; returns a summary.

    Under torchrun (train.processes > 1, or several nodes) this is one rank of a data-parallel run:
    every rank trains, rank 0 alone tracks and writes (gan.distributed).
    """
    world = distributed.world_from_environment()
    prepared = load_prepared(paths.prepared)
    device = resolve_device(distributed.rank_device(cfg.train.device, world))
    distributed.join(world, device)
    try:
        return _train(cfg, paths, prepared, device, world)
    finally:
        distributed.leave()


def _train(cfg: Config, paths: TrainPaths, prepared: Any, device: torch.device, world: World) -> dict[str, Any]:
    meta = prepared.meta
    num_classes = _conditional_classes(cfg, meta)
    task = make_task(cfg, meta, num_classes)
    paired = prepared.train_source is not None
    fixed = to_tensor(prepared.test_source[:cfg.generate.grid_rows]) if paired else None
    prompts = _prompt_tokens(cfg, meta) if task.name == "text" else None
    state = build_state(cfg, tuple(meta["shape"]), device, num_classes, world, task, fixed, prompts)
    run_fp = run_fingerprint(cfg, meta["sha256"], world.size)
    ckpt = checkpoint_path(paths, run_fp)
    resumed = try_resume(state, ckpt, run_fp)
    if len(set(world.gather((resumed, state.step)))) > 1:
        raise RuntimeError(f"the training processes disagree on where to resume: {world.gather(state.step)}")
    if task.name == "text":  # G's image-text judge, fitted before the first step (gan.alignment)
        fitted = task.align(cfg, state, prepared, resumed)
        if fitted and world.main:
            print(f"train: image-text judge fitted in {fitted['steps']} steps: retrieval top-1 "
                  f"{fitted['retrieval_top1']:.3f} within a batch of {cfg.train.batch_size}, loss {fitted['loss']:.3f}")
    batches = Batches(prepared.train_x, meta["kind"], device, state.index_rng,
                      prepared.train_y if num_classes else None, prepared.train_source, prepared.train_tokens)
    augment = DiffAugment(cfg.train.augment, state.augment_rng) if cfg.train.augment else None
    plan = make_plan(cfg, num_classes, augment, device, world, task)
    if not world.main:
        return _follow(state, cfg, plan, batches)
    if not resumed:
        shutil.rmtree(paths.samples, ignore_errors=True)
    threads = torch.get_num_threads()  # resolve_device set them
    processes = f", {world.size} processes of {plan.batch_size} samples" if world.parallel else ""
    doing = "" if cfg.task.name == "generation" else f"{cfg.task.name} "
    print(f"train: {doing}{cfg.model.arch} on {meta['name']} ({len(prepared.train_x)} samples), device {device}{processes}, "
          f"{plan.precision}{', compiled' if cfg.train.compile else ''}, {threads} threads, "
          + (f"resuming at step {state.step}" if resumed else "from scratch") + f", {cfg.train.steps} steps")
    tags = {"data.sha256": meta["sha256"], "code.sha256": run_fp["code_sha256"],
            "distributed.world_size": str(world.size), "runtime.device": str(device),
            "runtime.precision": plan.precision, "runtime.threads": str(threads)}
    run = tracking.start_run(f"{cfg.data.name}-{cfg.model.arch}", tags, state.run_id)
    state.run_id = run.run_id
    run.log_params(cfg.flat())
    if not resumed:
        run.log_datasets(dataset_inputs(cfg, prepared, paths.prepared))
    run.write_link(paths.run_link)
    try:
        summary = _loop(state, cfg, plan, paths, ckpt, run_fp, batches, run, prepared)
        models.save_generator(state.sampler, cfg, meta, state.step, paths.generator, task.model_inputs())
        run.log_artifact(paths.generator, tracking.WEIGHTS_ARTIFACT.split("/")[0])  # loads without unpickling
        _log_model(state, cfg, run, paths.generator)
    except BaseException as exc:
        run.set_tags({"failure.reason": one_line(exc, 500) or type(exc).__name__})
        run.finish(ok=False)
        raise
    run.finish()
    return summary


DIGEST_CHARS = 36  # MLflow's dataset digest column holds 36 characters; the profile keeps the whole sha256


def dataset_inputs(cfg: Config, prepared: Any, directory: Path) -> list[dict[str, Any]]:
    """The training and held-out splits as MLflow dataset inputs: name, content sha256, the DVC path."""
    inputs = []
    for split, context, x, y in (("train", "training", prepared.train_x, prepared.train_y),
                                 ("test", "evaluation", prepared.test_x, prepared.test_y)):
        sha = content_hash([x, y])
        inputs.append({"name": f"{cfg.data.name}-{split}", "digest": sha[:DIGEST_CHARS], "context": context,
                       "source": f"{directory.as_posix()}/{split}.npz",
                       "profile": {"sha256": sha, "samples": len(x), "shape": list(x.shape[1:]),
                                   "data_sha256": prepared.meta["sha256"]}})
    return inputs


def _follow(state: State, cfg: Config, plan: Plan, batches: Batches) -> dict[str, Any]:
    """A rank other than 0: the same steps (their collectives average the gradients), and its RNG states
    at each checkpoint, which rank 0 writes. Nothing is logged or written here."""
    t = cfg.train
    while state.step < t.steps:
        train_step(state, plan, batches)
        if state.step % t.checkpoint_every == 0 or state.step == t.steps:
            state.rng_states()
    return {"steps": state.step}


def _conditional_classes(cfg: Config, meta: dict[str, Any]) -> int:
    """The number of classes G and D are conditioned on; 0 when model.conditional is off."""
    if not cfg.model.conditional:
        return 0
    classes = int(meta.get("num_classes") or 0)
    if classes < 2:
        raise UserError(f"model.conditional: true needs labelled data, but data.name={cfg.data.name} has "
                        f"{classes} classes (a folder needs one subfolder per class); set model.conditional: false")
    return classes


def _loop(state: State, cfg: Config, plan: Plan, paths: TrainPaths, ckpt: Path, run_fp: dict[str, Any],
          batches: Batches, run: tracking.TrackedRun, prepared: Any = None) -> dict[str, Any]:
    t = cfg.train
    logged = run.last_step(state.columns[0]) if state.history else 0  # a resumed run: what MLflow holds
    reporter = Reporter(paths.history, run, state.history, total=t.steps, start=state.step, logged_through=logged,
                        columns=state.columns)
    sources = getattr(prepared, "test_source", None)
    targets = prepared.test_x[:len(state.fixed_z)] if sources is not None else None
    captions = getattr(prepared, "test_tokens", None)  # text-to-image: scored on the held-out images' captions
    captions = torch.as_tensor(captions[:, 0]) if captions is not None else None
    scorer = (TrainingScore(cfg, paths.evaluator, paths.eval_history, state, run, sources, captions)
              if t.eval_every else None)
    if scorer is None:
        write_tsv(paths.eval_history, [], [])  # a DVC plots output even when no score is taken
    if state.step == 0 and not state.history:
        sample_grid(state, cfg, paths.samples, batches, run, targets)
        if scorer:
            scorer(state)
    started = time.perf_counter()
    first = state.step
    guard = Guard(state, cfg, ckpt, saved_step=first if first else None)
    try:
        while state.step < t.steps:
            reporter.add(state.step + 1, train_step(state, plan, batches))
            step, last = state.step, state.step == t.steps
            sample, checkpoint_due = step % t.sample_every == 0 or last, step % t.checkpoint_every == 0 or last
            score = scorer is not None and (step % t.eval_every == 0 or last)
            if step % t.log_every == 0 or sample or score or checkpoint_due:
                guard.flush(reporter, weights=sample or score or checkpoint_due)
            if sample:
                sample_grid(state, cfg, paths.samples, batches, run, targets)
            if score:
                scorer(state)
            if checkpoint_due:
                checkpoint.save_checkpoint(state.to_dict(run_fp, state.rng_states()), ckpt)
                guard.saved_step = step
    except TrainingDiverged:
        reporter.close()  # the curves up to the divergence stay in history.tsv and MLflow
        raise
    reporter.close()
    elapsed = time.perf_counter() - started
    save_curves(state.history, state.eval_history, scorer.columns if scorer else [], paths.curves, state.columns)
    run.log_artifact(paths.curves)
    steps_done = state.step - first
    summary = {"steps": state.step, "steps_run": steps_done, "seconds": round(elapsed, 2),
               "steps_per_second": round(steps_done / elapsed, 2) if steps_done else 0.0,
               "logging_fraction": round(reporter.seconds / elapsed, 5) if steps_done else 0.0}
    run.log_metrics([(state.step, {"perf/steps_per_second": summary["steps_per_second"],
                                   "perf/logging_fraction": summary["logging_fraction"]})])
    print(f"train: done, {steps_done} steps in {elapsed:.1f}s ({summary['steps_per_second']} steps/s); "
          f"logging took {100 * summary['logging_fraction']:.2f}% of it")
    return summary


def _log_model(state: State, cfg: Config, run: tracking.TrackedRun, weights_file: Path) -> None:
    """G as an MLflow model; `weights_file` (models/generator.pt) is what the outbox keeps if the store is down."""
    import copy

    generator = copy.deepcopy(state.sampler).cpu().eval().to(memory_format=torch.contiguous_format)
    example = sampling.noise(4, cfg.model.latent_dim, generator_for(cfg.seed, "example"), "cpu").numpy()
    if state.fixed_z.dim() == 4:  # a paired task: G takes held-out sources
        example = state.fixed_z[:4].cpu().numpy()
    if state.fixed_y is not None:
        example = None  # G(z, y) takes two inputs; MLflow's single input example cannot express it
    requirements = [f"torch=={torch.__version__.split('+')[0]}", "numpy"]
    if cfg.task.name == "text":  # the sentence encoders read WordLlama's tokenizer and vectors from its wheel
        requirements.append("wordllama==0.4.0.post1")
    uri = run.log_generator(generator, example, requirements, weights_file)
    if uri:  # None: the store is down and the model waits in the outbox, which finish() reports
        print(f"train: generator logged to MLflow as {uri}")
