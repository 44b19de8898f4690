"""The evaluate stage: the metrics named in evaluate.metrics, each stored with its protocol.

Every number's key states its metric, feature extractor and generated-sample count
(`fid_domain_5k`); `reports/evaluate/protocol.json` adds the reference split and count, the
extractor's weights hash, the resize and the seeds. With `evaluate.repeats: R`, the sampling
is redone with seeds seed..seed+R-1 and each number is the mean, with `<key>_repeats_std`.
"""

from __future__ import annotations

import functools
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan import catalog, tracking
from gan.config import Config
from gan.data import is_npz, load_prepared
from gan.errors import UserError, one_line
from gan.evaluator import Evaluator, load_evaluator
from gan.generation import draw_samples
from gan.metrics import families
from gan.metrics.copying import verdict as copying_verdict
from gan.metrics.inception import NUM_CLASSES as INCEPTION_CLASSES, InceptionFeatures, resolve_weights
from gan.metrics.registry import METRICS, FeatureView, applies, result_key, significant
from gan.models import load_generator
from gan.reference import load_reference
from gan.runtime import make_deterministic, resolve_device


@dataclass(frozen=True)
class EvaluatePaths:
    samples: Path  # data/generated/samples.npz: the samples of repeat 0
    generator: Path  # models/generator.pt: samples of further repeats
    prepared: Path  # data/prepared (its meta: kind, hash, classes)
    evaluator: Path  # models/evaluator.pt: domain classifier and its reference statistics
    reference: Path  # models/reference_inception.pt
    run_link: Path  # reports/train/run.json
    metrics: Path  # reports/metrics.json
    details: Path  # reports/evaluate: protocol.json, per_class.json


FIX_SAMPLES = "run `dvc repro -f generate`"


def read_samples(path: Path) -> dict[str, np.ndarray]:
    """Every array of generate's samples.npz (`x`, and `y` or a task's own); a missing or damaged file is one
    line."""
    if not path.is_file():
        raise UserError(f"{path}: no generated samples; run `dvc repro generate` first")
    try:
        if not is_npz(path):
            raise ValueError("not an .npz archive")
        with np.load(path) as saved:
            arrays = {name: saved[name] for name in saved.files}
        if "x" not in arrays:
            raise KeyError("x is not a file in the archive")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: unreadable samples ({type(exc).__name__}: {one_line(exc, 200)}); "
                        f"{FIX_SAMPLES}") from None
    return arrays


def load_samples(path: Path, count: int, meta: dict[str, Any],
                 arrays: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """generate's first `count` samples (from `arrays` when read already); a damaged file, or one unlike the
    data of meta.json, is one line."""
    fix = FIX_SAMPLES
    arrays = read_samples(path) if arrays is None else arrays
    samples, labels = arrays["x"], arrays.get("y")
    _check_samples(path, samples, labels, meta, fix)
    if len(samples) < count:
        raise UserError(f"{path} holds {len(samples)} samples but evaluate.num_samples is {count}; "
                        f"raise generate.num_samples or lower evaluate.num_samples")
    return samples[:count], (labels[:count] if labels is not None else None)


def _check_samples(path: Path, samples: np.ndarray, labels: np.ndarray | None, meta: dict[str, Any],
                   fix: str) -> None:
    """Samples must be stored like the prepared data, or the metrics would compare unlike things."""
    dtype = np.dtype(np.uint8 if meta["kind"] == "images" else np.float32)
    shape = tuple(meta["shape"])
    if samples.dtype != dtype or samples.shape[1:] != shape:
        raise UserError(f"{path}: samples are {samples.dtype} {samples.shape[1:]} per sample but the prepared "
                        f"{meta['kind']} are {dtype} {shape}; {fix}")
    if labels is not None and (labels.dtype.kind not in "iu" or labels.shape != samples.shape[:1]):
        raise UserError(f"{path}: labels 'y' are {labels.dtype} {labels.shape}, expected integers "
                        f"{samples.shape[:1]}; {fix}")


class Extractors:
    """The feature views of one set of generated samples, built only for the metrics that need them."""

    def __init__(self, cfg: Config, evaluator: Evaluator, reference: dict[str, Any], device: torch.device):
        self.cfg, self.evaluator, self.reference, self.device = cfg, evaluator, reference, device
        self._inception: InceptionFeatures | None = None
        self._last_samples: np.ndarray | None = None  # the samples of the last view, and their views by extractor
        self._last: dict[str, FeatureView] = {}

    def view(self, extractor: str, samples: np.ndarray, labels: np.ndarray | None) -> FeatureView:
        """The view of `samples` (embedded once: asked again for the last samples, the same view)."""
        if samples is not self._last_samples:
            self._last_samples, self._last = samples, {}
        if extractor not in self._last:
            self._last[extractor] = self._embed(extractor, samples, labels)
        return self._last[extractor]

    def _embed(self, extractor: str, samples: np.ndarray, labels: np.ndarray | None) -> FeatureView:
        batch = self.cfg.evaluate.batch_size
        if extractor in ("points", "domain"):
            return self.evaluator.view(samples, batch, self.device, labels)
        if self._inception is None:
            self._inception = InceptionFeatures(resolve_weights(self.cfg.evaluate.inception_weights), self.device)
            if self._inception.sha256 != self.reference["weights_sha256"]:
                raise UserError(f"the Inception weights {self._inception.weights_path} differ from those of the "
                                f"reference statistics; run `dvc repro -f reference`")
        fake, logits = self._inception.embed(samples, batch)
        ref = self.reference
        return FeatureView(ref["features"].double().numpy(), fake, ref["mu"].double().numpy(),
                           ref["sigma"].double().numpy(), logits, None, INCEPTION_CLASSES)


def evaluate(cfg: Config, paths: EvaluatePaths) -> dict[str, float]:
    """Score generated samples with every applicable requested metric; write and log the results."""
    prepared = load_prepared(paths.prepared)
    meta = prepared.meta
    evaluator = load_evaluator(paths.evaluator)
    if evaluator.data_sha256 != meta["sha256"]:
        raise UserError(f"{paths.evaluator} was built for other data (sha256 {evaluator.data_sha256[:12]}, "
                        f"prepared data is {meta['sha256'][:12]}); run `dvc repro features`")
    reference = load_reference(paths.reference)
    device = resolve_device(cfg.train.device)
    generator = load_generator(paths.generator, device)  # for the classes it takes, and for repeats
    saved = generator[1]
    outputs = catalog.OUTPUTS[saved["task"]]  # "prompted" (text) scores its samples as generation does, and more
    paired = outputs == "paired"
    count = min(cfg.evaluate.num_samples, meta["test_size"]) if paired else cfg.evaluate.num_samples
    names, skipped = _plan(cfg, meta, reference, int(saved.get("num_classes", 0)) > 0)
    extractors = Extractors(cfg, evaluator, reference, device)
    stored = read_samples(paths.samples)
    first = _samples(cfg, stored, paths, meta, generator, 0, device, count)
    rounds = [_score(cfg, names, extractors, first, 0)]
    rounds += [_score(cfg, names, extractors, _samples(cfg, stored, paths, meta, generator, r, device, count),
                      r)
               for r in range(1, cfg.evaluate.repeats)]
    metrics, per_class = _combine(rounds)
    if paired:  # beside the baseline and the real targets, by the same code (gan.tasks.scoring)
        from gan.tasks import scoring

        embed = functools.partial(extractors.view, "domain", labels=None)  # the outputs' view: already made
        metrics.update({k: significant(v) for k, v in scoring.score(saved, evaluator, prepared, first[0], embed,
                                                                     cfg.seed).items()})
    if outputs == "prompted":  # the prompted sets of each phrasing (gan.tasks.prompting)
        from gan.tasks import prompting

        metrics.update({k: significant(v) for k, v in prompting.score_prompts(
            evaluator, stored, cfg.evaluate.batch_size, device).items()})
    metrics, untrusted = _set_aside_untrusted(metrics, evaluator)
    protocol = _protocol(cfg, names, skipped, meta, evaluator, reference, count, saved)
    _write(paths, metrics, per_class, protocol, untrusted)
    run = tracking.reopen_run(paths.run_link, {f"evaluate.{k}": v for k, v in cfg.to_dict()["evaluate"].items()})
    run.log_metrics([(0, {f"eval/{k}": v for k, v in metrics.items() if np.isfinite(v)})])
    run.set_tags(protocol_tags(protocol))
    for path in (paths.metrics, paths.details / "protocol.json"):
        run.log_artifact(path, "evaluate")
    run.finish(stage="evaluate")
    print("evaluate: " + ", ".join(f"{k}={v:.6g}" for k, v in metrics.items()))
    for key, value in metrics.items():
        if key.startswith("copying_ct_") and np.isfinite(value):
            print(f"evaluate: data copying: {copying_verdict(value)}")
    print(f"evaluate: the run in the MLflow UI: {run.page()}")
    _register(cfg, meta, metrics, paths.run_link, count)
    hint = recipe_hint(cfg, meta, metrics)
    if hint:
        print(hint)
    return metrics


def _set_aside_untrusted(metrics: dict[str, float],
                         evaluator: Evaluator) -> tuple[dict[str, float], dict[str, float]]:
    """An evaluator that the features stage could not trust (a classifier at chance) gives numbers that
    look like scores and mean nothing: they leave metrics.json (and MLflow, and the registry's ranking)
    for reports/evaluate/untrusted.json, and metrics.json says `domain_metrics_trusted: 0`."""
    if evaluator.trusted:
        return metrics, {}
    untrusted = {k: v for k, v in metrics.items() if "_domain_" in k}
    kept = {k: v for k, v in metrics.items() if k not in untrusted}
    print(f"evaluate: warning: the domain metrics ({', '.join(untrusted) or 'none'}) are not scores: "
          f"{evaluator.warning}; they are in untrusted.json only")
    return {**kept, "domain_metrics_trusted": 0}, untrusted


# below this share of on-mode samples, a 2-D result is pointed at its recipe; the recipes themselves score
# 91-99% on every seed (docs/recipes.md), so a recipe run is never sent to its own recipe
GOOD_HIGH_QUALITY_PCT = 85.0


def recipe_hint(cfg: Config, meta: dict[str, Any], metrics: dict[str, float],
                recipes: Path = Path("recipes")) -> str | None:
    """For a 2-D mixture that lost modes or quality: a pointer at the data's tuned recipe, when one ships."""
    captured = [v for k, v in metrics.items() if k.startswith("modes_captured_")]
    quality = [v for k, v in metrics.items() if k.startswith("high_quality_pct_")]
    total = len(meta.get("modes") or [])
    if not (captured and quality and total) or not (recipes / f"{cfg.data.name}.yaml").is_file():
        return None
    if captured[0] >= total and quality[0] >= GOOD_HIGH_QUALITY_PCT:
        return None
    return (f"evaluate: note: {captured[0]:.0f} of {total} modes, {quality[0]:.1f}% high quality; the tuned "
            f"recipe for {cfg.data.name} captures every mode at its real width: run "
            f"`gan recipe run {cfg.data.name}` (recipes/{cfg.data.name}.yaml, docs/recipes.md)")


def _plan(cfg: Config, meta: dict[str, Any], reference: dict[str, Any],
          conditional: bool) -> tuple[list[str], dict[str, str]]:
    """The requested metrics that apply to this data, and why each other one is skipped."""
    names, skipped = [], {}
    for name in cfg.evaluate.metrics:
        if not applies(name, meta["kind"], int(meta["num_classes"]), conditional):
            skipped[name] = (f"does not apply to {meta['kind']} data with {meta['num_classes']} classes"
                             + ("" if conditional else " from an unconditional generator"))
        elif METRICS[name].extractor == "inception" and reference["status"] != "ok":
            skipped[name] = reference.get("message", "no Inception reference; run `dvc repro -f reference`")
            print(f"evaluate: warning: {name} skipped: {skipped[name]}")
        else:
            names.append(name)
    return names, skipped


def _samples(cfg: Config, stored: dict[str, np.ndarray], paths: EvaluatePaths, meta: dict[str, Any],
             generator: tuple[torch.nn.Module, dict[str, Any]], repeat: int,
             device: torch.device, count: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Repeat 0 scores generate's samples (a paired task's: its outputs on the held-out sources); repeat r
    draws anew from G with seed + r."""
    if repeat == 0:
        return load_samples(paths.samples, count, meta, stored)
    make_deterministic(cfg.seed + repeat, device)
    return draw_samples(*generator, cfg.evaluate.num_samples, cfg.seed + repeat, cfg.evaluate.batch_size,
                        device)


def _score(cfg: Config, names: list[str], extractors: Extractors, drawn: tuple[np.ndarray, np.ndarray | None],
           repeat: int) -> dict[str, float]:
    samples, labels = drawn
    views: dict[str, FeatureView] = {}
    out: dict[str, float] = {}
    for name in names:
        metric = METRICS[name]
        if metric.extractor not in views:
            views[metric.extractor] = extractors.view(metric.extractor, samples, labels)
        for key, value in families.compute(name, views[metric.extractor], cfg.seed + repeat).items():
            out[result_key(name, key, len(samples))] = float(value)
    return out


def _combine(rounds: list[dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean over repeats (and their std when there are several); per-class FIDs go to their own file."""
    metrics, per_class = {}, {}
    for key in rounds[0]:
        values = np.array([r[key] for r in rounds])
        target = per_class if key.startswith("fid_class") else metrics
        target[key] = significant(values.mean())
        if len(rounds) > 1:
            target[f"{key}_repeats_std"] = significant(values.std(ddof=1))
    return metrics, per_class


PRIMARY = (("fid_domain", "fid"), ("fid_inception", "fid"), ("modes", "reverse_kl"))  # lower is better


def _register(cfg: Config, meta: dict[str, Any], metrics: dict[str, float], run_link: Path, n: int) -> None:
    """The generator as a new version of the registered model gan-<data>-<arch> (a paired task's:
    gan-<data>-<task>-<arch>), the alias @best on the version with the lowest primary score (FID for
    images, reverse KL for points). A run with a non-finite number is not registered; a store that
    cannot take it is reported, not fatal."""
    primary = next((result_key(m, k, n) for m, k in PRIMARY if result_key(m, k, n) in metrics), None)
    name = registered_name(cfg.data.name, meta.get("task"), cfg.model.arch)
    if primary is None:
        why = ("the domain metrics are not scores (reports/evaluate/untrusted.json)"
               if metrics.get("domain_metrics_trusted") == 0
               else "none of fid_domain, fid_inception or modes was computed")
        print(f"evaluate: not registered in {name}: {why}")
        return
    bad = [k for k, v in metrics.items() if not np.isfinite(v)]
    if bad:
        print(f"evaluate: not registered in {name}: {', '.join(bad)} not finite")
        return
    run_id = json.loads(run_link.read_text())["run_id"]
    tags = {"data.sha256": meta["sha256"], "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
            "git.commit": tracking.git_commit()}
    try:
        print("evaluate: " + tracking.register_generator(run_id, name, primary, metrics, tags))
    except UserError as exc:
        print(f"evaluate: not registered: {exc}")


def registered_name(data: str, task: dict[str, Any] | None, arch: str) -> str:
    """gan-<data>-<arch> for generation (as before tasks existed); for a paired task (meta.json's `task`)
    gan-<data>-<task>-<arch> with the task's input in its name: translation-edges, translation-mask,
    super_resolution-x4. Models that answer different questions never share a name, nor an @best."""
    if not task:
        return f"gan-{data}-{arch}"
    if task["name"] == "text":
        return f"gan-{data}-text-{arch}"
    label = f"{task['name']}-x{task['scale']}" if task["name"] == "super_resolution" else f"{task['name']}-{task['source']}"
    return f"gan-{data}-{label}-{arch}"


def protocol_tags(protocol: dict[str, Any]) -> dict[str, str]:
    """A handful of MLflow tags to search runs by; the whole protocol is the run's evaluate/protocol.json.

    The fields every metric shares (sample count, seeds, repeats, reference split), and the sha256 of
    each feature extractor, so that runs scored by the same evaluator are found by one tag.
    """
    entries = list(protocol["metrics"].values())
    tags = {}
    for field in ("generated_samples", "seeds", "repeats", "reference_split"):
        values = {str(e[field]) for e in entries if field in e}
        if len(values) == 1:
            tags[f"protocol.{field}"] = values.pop()
    for name, entry in protocol["metrics"].items():
        if entry.get("extractor_sha256"):
            tags[f"protocol.{METRICS[name].extractor}_extractor_sha256"] = entry["extractor_sha256"]
    return tags


def _protocol(cfg: Config, names: list[str], skipped: dict[str, str], meta: dict[str, Any],
              evaluator: Evaluator, reference: dict[str, Any], count: int,
              saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a reader needs to reproduce or compare each number."""
    size = meta.get("image_size")
    entries = {}
    for name in names:
        extractor = METRICS[name].extractor
        entry = {"about": METRICS[name].about, "generated_samples": count,
                 "reference_split": "test", "seeds": f"{cfg.seed}..{cfg.seed + cfg.evaluate.repeats - 1}",
                 "repeats": cfg.evaluate.repeats, "data_sha256": meta["sha256"]}
        if extractor == "inception":
            entry.update(reference_samples=reference["count"], extractor="FID Inception-v3 pool3, 2048-d",
                         extractor_sha256=reference["weights_sha256"],
                         resize=f"{size}px bilinear to 299px, [-1, 1], grayscale tiled to 3 channels")
        elif extractor == "domain":
            entry.update(reference_samples=evaluator.ref_count, extractor=f"domain {evaluator.kind}, "
                         f"{evaluator.ref_features.shape[1]}-d", extractor_sha256=evaluator.sha256,
                         resize=f"none ({size}px)")
        else:
            entry.update(reference="mixture modes", extractor="none", mode_std=evaluator.mode_std)
        entries[name] = entry
    checks = {"kind": evaluator.kind, "trusted": evaluator.trusted, "warning": evaluator.warning,
              **(evaluator.checks or {})}
    protocol = {"metrics": entries, "skipped": skipped, "evaluator": checks}
    outputs = catalog.OUTPUTS[saved["task"]] if saved is not None else "samples"
    if outputs == "prompted":
        from gan.tasks import prompting

        protocol["task"] = {"name": "text", "encoder": saved["task_inputs"]["text"]["encoder"],
                            "whole_set": f"{count} images for the held-out images' own captions",
                            "about": prompting.__doc__.strip()}
    elif outputs == "paired":
        from gan.tasks import scoring

        protocol["task"] = {**meta.get("task", {}), "pairs": count, "about": scoring.__doc__.strip()}
        if int(meta.get("num_classes") or 0) < 2 or evaluator.kind != "classifier":
            skipped["accuracy_domain"] = ("the data has no labels (or its classifier was not used), so no "
                                          "classifier accuracy on the outputs; PSNR, SSIM and the domain FID in "
                                          f"{evaluator.kind.replace('_', '-')} features still apply")
    return protocol


def _write(paths: EvaluatePaths, metrics: dict[str, float], per_class: dict[str, float],
           protocol: dict[str, Any], untrusted: dict[str, float]) -> None:
    def finite(numbers: dict[str, float]) -> dict[str, float | None]:
        return {k: (v if np.isfinite(v) else None) for k, v in numbers.items()}  # JSON has no NaN

    paths.metrics.parent.mkdir(parents=True, exist_ok=True)
    paths.metrics.write_text(json.dumps(finite(metrics), indent=2) + "\n")
    paths.details.mkdir(parents=True, exist_ok=True)
    (paths.details / "protocol.json").write_text(json.dumps(protocol, indent=2) + "\n")
    (paths.details / "per_class.json").write_text(json.dumps(per_class, indent=2) + "\n")
    untrusted_path = paths.details / "untrusted.json"
    if untrusted:
        untrusted_path.write_text(json.dumps({"why": protocol["evaluator"]["warning"],
                                              "metrics": finite(untrusted)}, indent=2) + "\n")
    else:
        untrusted_path.unlink(missing_ok=True)
