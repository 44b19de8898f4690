"""params.yaml loaded into frozen, typed dataclasses, validated before any work starts.

Every key has a type and, where it matters, an allowed range or set of names. A mistake
stops the stage with one line naming the full key path, what is allowed and what was
given, e.g. ``params.yaml: train.lr_d must be > 0, got -1``.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import yaml

from gan import catalog
from gan.errors import UserError, one_line


def _param(default: Any, check: Callable[[Any], bool] | None = None, rule: str = "",
           choices: tuple[str, ...] | None = None, doc: str = "") -> Any:
    """A dataclass field with its validation rule.

    ``choices`` is the allowed names, from gan.catalog: the light registry of names, so that
    validating params never imports the code behind them.
    """
    meta = {"check": check, "rule": rule, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults")
    return field(default=default, metadata=meta)


def _positive(x: Any) -> bool:
    return x > 0


def _non_negative(x: Any) -> bool:
    return x >= 0


def _betas(x: tuple[float, ...]) -> bool:
    return len(x) == 2 and all(0.0 <= b < 1.0 for b in x)


@dataclass(frozen=True)
class DataConfig:
    name: str = _param("mnist5k", choices=tuple(catalog.DATASET_KINDS), doc="which dataset prepare builds")
    root: str = _param("data/raw", doc="where torchvision datasets and image folders live")
    image_size: int = _param(28, _positive, "> 0", doc="side of the square images, in pixels")
    test_fraction: float = _param(0.2, lambda x: 0.0 < x < 1.0, "in (0, 1)",
                                  doc="held-out share, for data without its own test split")
    num_points: int = _param(20000, lambda x: x >= 10, ">= 10", doc="2-D mixtures: points drawn in all")
    download: bool = _param(True, doc="torchvision datasets: download into root when missing")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = _param("dcgan", choices=tuple(catalog.ARCHITECTURES))
    latent_dim: int = _param(64, _positive, "> 0")
    latent_components: int = _param(0, _non_negative, ">= 0",
                                    doc="z_0 picks one of this many equally likely latent components; 0: off")
    width: int = _param(64, _positive, "> 0", doc="base channels (DCGAN, ResNet) or hidden units (MLP)")
    conditional: bool = _param(False, doc="class-conditional G (conditional BN / embedding) and projection D")
    spectral_norm: bool = _param(False, doc="spectral normalisation of every D weight (Miyato et al. 2018)")
    depth: int = _param(4, _positive, "> 0", doc="MLP: hidden layers of G")
    d_depth: int = _param(3, _positive, "> 0", doc="MLP: hidden layers of D")
    d_width: int = _param(0, _non_negative, ">= 0", doc="MLP: hidden units of D; 0: model.width")
    g_norm: str = _param("batch", choices=catalog.G_NORMS, doc="MLP: normalisation of G's hidden layers")
    d_activation: str = _param("maxout", choices=catalog.D_ACTIVATIONS,
                               doc="MLP: D's hidden layers, maxout (5 pieces) or LeakyReLU(0.2)")
    upsample: str = _param("transposed", choices=catalog.UPSAMPLES,
                           doc="DCGAN: G's 2x upsampling, transposed conv or nearest + 3x3 conv")
    patch: int = _param(16, lambda x: x in catalog.PATCH_SIZES, " or ".join(map(str, catalog.PATCH_SIZES)),
                        doc="unet, srresnet: the receptive field of each PatchGAN score in pixels; 0: the whole image")
    blocks: int = _param(8, _positive, "> 0", doc="srresnet: residual blocks of G")
    sync_batchnorm: bool = _param(False, doc="train.processes > 1 on CUDA: batch norm over the global batch "
                                             "(SyncBatchNorm); off: each process normalises its own share")

    def options(self) -> dict[str, Any]:
        """The architecture-specific keys model.arch reads, for gan.models.build."""
        return {k: getattr(self, k) for k in catalog.ARCHITECTURES[self.arch].options}


@dataclass(frozen=True)
class TaskConfig:
    name: str = _param("generation", choices=catalog.TASKS,
                       doc="generation: noise -> image; translation: source image -> image (pix2pix); "
                           "super_resolution: low-resolution image -> image (SRResNet / SRGAN)")
    source: str = _param("edges", choices=catalog.TRANSLATION_SOURCES,
                         doc="translation: what G translates from (mask: inpainting)")
    mask: str = _param("random", choices=catalog.MASK_PLACEMENTS, doc="translation, source mask: where the hole is")
    hole: float = _param(0.5, lambda x: 0 < x <= 1, "in (0, 1]",
                         doc="translation, source mask: the square hole's side as a share of the image's side")
    scale: int = _param(4, lambda x: x in catalog.SR_SCALES, " or ".join(map(str, catalog.SR_SCALES)),
                        doc="super_resolution: the upscaling factor")
    content_weight: float = _param(100.0, _non_negative, ">= 0",
                                   doc="translation, super_resolution: λ of the L1 content term in G's loss "
                                       "(pix2pix: 100 beside an adversarial weight of 1)")
    adversarial_weight: float = _param(1.0, _non_negative, ">= 0",
                                       doc="translation, super_resolution: the weight of the adversarial term in "
                                           "G's loss; 0: content only")
    encoder: str = _param("wordllama", choices=catalog.TEXT_ENCODERS,
                          doc="text: wordllama (frozen pretrained token vectors from the wordllama wheel, a small "
                              "trained encoder on top) or scratch (word vectors learned from the captions alone)")
    text_dim: int = _param(64, _positive, "> 0", doc="text: the size of the sentence vector G and D are conditioned on")
    captions: int = _param(3, _positive, "> 0", doc="text: captions kept per training image (one drawn per step)")
    mismatch: bool = _param(True, doc="text: GAN-CLS's matching-aware D (a real image with another image's "
                                      "caption counts as fake)")
    align_steps: int = _param(1000, _non_negative, ">= 0", doc="text: steps that fit the image-text judge of G's "
                                                                "match term before the GAN starts")
    align_weight: float = _param(2.0, _non_negative, ">= 0", doc="text: weight of G's match term (each image should "
                                                                 "pick its own caption; 0: off)")
    feature_weight: float = _param(0.0, _non_negative, ">= 0",
                                   doc="translation, super_resolution: the weight of the perceptual term, L1 "
                                       "between D's activations for the output and the target (feature "
                                       "matching, pix2pixHD); 0: off")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = _param(4000, _non_negative, ">= 0", doc="generator updates; 0 keeps the untrained G")
    batch_size: int = _param(64, _positive, "> 0")
    loss: str = _param("nonsaturating", choices=catalog.LOSSES)
    lr_g: float = _param(2e-4, _positive, "> 0")
    lr_d: float = _param(2e-4, _positive, "> 0")
    betas_g: tuple[float, float] = _param((0.5, 0.999), _betas, "two numbers in [0, 1)")
    betas_d: tuple[float, float] = _param((0.5, 0.999), _betas, "two numbers in [0, 1)")
    lr_decay_start: float = _param(1.0, lambda x: 0.0 <= x <= 1.0, "in [0, 1]",
                                   doc="share of train.steps after which both learning rates fall linearly "
                                       "to 0 at the last step; 1: constant")
    d_steps: int = _param(1, _positive, "> 0", doc="D updates for each G update")
    gp_weight: float = _param(10.0, _non_negative, ">= 0", doc="λ of the WGAN-GP gradient penalty (loss: wasserstein)")
    r1_weight: float = _param(0.0, _non_negative, ">= 0", doc="γ of the R1 penalty on reals; 0: off")
    r1_interval: int = _param(16, _positive, "> 0", doc="lazy R1: apply every N steps, scaled by N")
    mmd_weight: float = _param(0.0, _non_negative, ">= 0",
                               doc="generation: λ of a distribution-matching term in G's loss, the MMD² between "
                                   "G's batch and D's real batch (Gaussian kernels of train.mmd_bandwidths); 0: off")
    mmd_bandwidths: tuple[float, ...] = _param((), lambda x: all(b > 0 for b in x), "a list of numbers > 0",
                                               doc="the MMD term's kernel widths, in the data's units (a 2-D "
                                                   "mixture: about its modes' std)")
    ema_half_life_images: float = _param(0.0, _non_negative, ">= 0", doc="EMA of G by half-life in images; 0: off")
    augment: tuple[str, ...] = _param((), lambda x: len(set(x)) == len(x), "a list without repeats",
                                      choices=catalog.AUGMENT_POLICIES,
                                      doc="DiffAugment policy, e.g. [color, translation, cutout]; []: off")
    pack: int = _param(1, _positive, "> 0", doc="PacGAN: D judges this many samples at once")
    precision: str = _param("auto", choices=catalog.PRECISIONS,
                            doc="fp32, or bf16 autocast with fp32 weights and penalties (conv nets also channels_last); "
                                "auto: bf16 for conv nets on CUDA, fp32 otherwise")
    compile: bool = _param(False, doc="torch.compile G and D (the first steps pay the compilation)")
    processes: int = _param(1, _positive, "> 0",
                            doc="training processes on this machine (torchrun; gloo on the CPU, one GPU each on CUDA); "
                                "train.batch_size is the global batch")
    device: str = _param("auto", lambda x: x in ("auto", "cpu") or x == "cuda" or x.startswith("cuda:"),
                         "'auto', 'cpu', 'cuda' or 'cuda:N'")
    sample_every: int = _param(500, _positive, "> 0")
    checkpoint_every: int = _param(500, _positive, "> 0")
    log_every: int = _param(50, _positive, "> 0", doc="steps between flushes of the loss curves")
    eval_every: int = _param(500, _non_negative, ">= 0", doc="steps between cheap FID-style scores; 0: never")
    eval_samples: int = _param(1000, lambda x: x >= 2, ">= 2", doc="generated samples of each cheap score")


@dataclass(frozen=True)
class FeaturesConfig:
    extractor: str = _param("auto", choices=catalog.EXTRACTORS,
                            doc="the network behind the domain metrics: a classifier of the labels, a network "
                                "trained on the images alone (SimCLR), or a fixed random one; auto: the "
                                "classifier when the data has labels and it beats chance, else self_supervised")
    epochs: int = _param(4, _positive, "> 0", doc="epochs of the domain classifier")
    ssl_steps: int = _param(200, _positive, "> 0", doc="steps of the self-supervised network (SimCLR)")
    batch_size: int = _param(128, _positive, "> 0")
    lr: float = _param(1e-3, _positive, "> 0")


DEFAULT_PROMPTS = ("a thick 7 leaning right", "a thin 1 upright", "a bold seven slanted to the right", "2, thin, upright",
                   "the number zero, heavy, straight", "an image of a skinny 4 that is italic")


@dataclass(frozen=True)
class GenerateConfig:
    num_samples: int = _param(5000, _positive, "> 0")
    batch_size: int = _param(500, _positive, "> 0")
    grid_rows: int = _param(8, _positive, "> 0", doc="the sample grid is grid_rows x grid_rows")
    interpolation_rows: int = _param(8, _positive, "> 0")
    interpolation_steps: int = _param(10, lambda x: x >= 2, ">= 2")
    prompts: tuple[str, ...] = _param(DEFAULT_PROMPTS, lambda x: len(x) > 0 and all(str(p).strip() for p in x),
                                      "a non-empty list of non-empty captions",
                                      doc="task.name=text: the prompts of the sample figure, one row each")


DEFAULT_METRICS = ("fid_domain", "kid_domain", "pr_domain", "dc_domain", "is_domain", "fid_per_class_domain",
                   "classes_domain", "agreement_domain", "copying_domain", "modes")


@dataclass(frozen=True)
class EvaluateConfig:
    num_samples: int = _param(5000, lambda x: x >= 2, ">= 2", doc="generated samples each score uses")
    batch_size: int = _param(500, _positive, "> 0")
    metrics: tuple[str, ...] = _param(DEFAULT_METRICS, lambda x: len(x) > 0 and len(set(x)) == len(x),
                                      "a non-empty list without repeats", choices=catalog.METRICS)
    repeats: int = _param(1, _positive, "> 0", doc="rerun the sampling with new seeds; report mean and std")
    inception_weights: str = _param("", doc="pt_inception-2015-12-05-6726825d.pth; empty: the torch hub cache")


@dataclass(frozen=True)
class Config:
    seed: int = _param(0, _non_negative, ">= 0")
    data: DataConfig = field(default_factory=DataConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def flat(self) -> dict[str, Any]:
        """params as dotted keys, e.g. {"train.lr_g": 0.0002}."""
        return flatten(self.to_dict())


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


class _Reader:
    """Builds a dataclass from a mapping, raising UserError with the key path on any mistake."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, message: str) -> typing.NoReturn:
        raise UserError(f"{self.source}: {message}")

    def build(self, cls: type, raw: Any, path: str) -> Any:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            self.fail(f"{path or 'the file'} must be a mapping of keys, got {type(raw).__name__} {raw!r}")
        known = {f.name: f for f in fields(cls)}
        for key in raw:
            if key not in known:
                where = f"{path}.{key}" if path else str(key)
                if where in RENAMED:
                    self.fail(f"{where} was replaced by {RENAMED[where]}")
                hint = difflib.get_close_matches(str(key), known, n=1)
                suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.fail(f"unknown key {where}{suggestion}; known keys here: {', '.join(known)}")
        hints = typing.get_type_hints(cls)
        values = {}
        for name, f in known.items():
            where = f"{path}.{name}" if path else name
            if name not in raw:
                continue
            kind = hints[name]
            if dataclasses.is_dataclass(kind):
                values[name] = self.build(kind, raw[name], where)
            else:
                values[name] = self.value(f, kind, raw[name], where)
        return cls(**values)

    def value(self, f: dataclasses.Field, kind: Any, raw: Any, where: str) -> Any:
        value = self.coerce(kind, raw, where)
        allowed = f.metadata.get("choices")
        if allowed is not None:
            for i, item in enumerate(value if isinstance(value, tuple) else (value,)):
                if item not in allowed:
                    at = f"{where}[{i}]" if isinstance(value, tuple) else where
                    self.fail(f"{at} must be one of {', '.join(allowed)}; got {item!r}")
        check = f.metadata.get("check")
        if check is not None and not check(value):
            self.fail(f"{where} must be {f.metadata['rule']}, got {raw!r}")
        return value

    def coerce(self, kind: Any, raw: Any, where: str) -> Any:
        if typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            if not isinstance(raw, (list, tuple)):
                self.fail(f"{where} must be a list like [0.5, 0.999], got {raw!r}")
            return tuple(self.coerce(item, r, f"{where}[{i}]") for i, r in enumerate(raw))
        if kind is bool:
            if not isinstance(raw, bool):
                self.fail(f"{where} must be true or false, got {raw!r}")
            return raw
        if kind is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                self.fail(f"{where} must be an integer, got {raw!r}")
            return raw
        if kind is float:
            if isinstance(raw, bool) or not isinstance(raw, (int, float)):
                self.fail(f"{where} must be a number, got {raw!r}")
            return float(raw)
        if kind is str:
            if not isinstance(raw, str):
                self.fail(f"{where} must be a string, got {raw!r}")
            return raw
        raise TypeError(f"no reader for {kind!r} at {where}")  # a bug in this module, not user input


def _cross_check(cfg: Config, fail: Callable[[str], typing.NoReturn]) -> None:
    """Rules that tie two keys together, checked before any stage does work."""
    kind = catalog.DATASET_KINDS[cfg.data.name]
    arch = catalog.ARCHITECTURES[cfg.model.arch]
    if kind not in arch.data_kinds:
        fail(f"model.arch={cfg.model.arch} needs {' or '.join(arch.data_kinds)} data, but "
             f"data.name={cfg.data.name} gives {kind}; use model.arch="
             f"{next(n for n, a in catalog.ARCHITECTURES.items() if kind in a.data_kinds)}")
    if kind == "images" and arch.image_sizes and cfg.data.image_size not in arch.image_sizes:
        sizes = ", ".join(map(str, arch.image_sizes))
        fail(f"data.image_size must be one of {sizes} for model.arch={cfg.model.arch}, "
             f"got {cfg.data.image_size}")
    defaults = ModelConfig()
    for key in catalog.MODEL_OPTIONS:
        if key not in arch.options and getattr(cfg.model, key) != getattr(defaults, key):
            readers = [n for n, a in catalog.ARCHITECTURES.items() if key in a.options]
            fail(f"model.{key} applies to model.arch={' or '.join(readers)}, not {cfg.model.arch}; "
                 f"remove it or set model.arch: {readers[0]}")
    from gan.task_params import check_task  # it reads this module's defaults

    check_task(cfg, kind, fail)
    if cfg.model.latent_components and cfg.model.latent_dim < 2:
        fail(f"model.latent_components={cfg.model.latent_components} takes the first latent coordinate to pick "
             f"the component, so model.latent_dim must be >= 2, got {cfg.model.latent_dim}")
    t = cfg.train
    if t.loss in catalog.GRADIENT_PENALTY_LOSSES and arch.d_batch_norm and not cfg.model.spectral_norm:
        fail(f"train.loss={t.loss} adds a per-sample gradient penalty, which batch norm in the D of "
             f"model.arch={cfg.model.arch} makes wrong (it mixes the samples of a batch); set "
             f"model.spectral_norm: true (a D without batch norm) or another train.loss (e.g. hinge)")
    if t.augment:
        if kind != "images":
            fail(f"train.augment={list(t.augment)} works on images, but data.name={cfg.data.name} gives {kind}; "
                 f"set train.augment: []")
    if t.batch_size % t.processes:
        fail(f"train.batch_size ({t.batch_size}) is the global batch and must split evenly over train.processes "
             f"({t.processes}); set a multiple of {t.processes}, e.g. {t.processes * max(1, t.batch_size // t.processes)}")
    if (t.batch_size // t.processes) % t.pack:
        share = " per process" if t.processes > 1 else ""
        fail(f"train.batch_size{share} ({t.batch_size // t.processes}) must be a multiple of train.pack ({t.pack})")
    if t.precision == "bf16" and kind == "points":
        fail(f"train.precision=bf16 rounds 2-D coordinates to 8 bits of mantissa (steps of 0.016-0.031 on "
             f"data.name={cfg.data.name}, a third of a mode's spread); set train.precision: fp32 or auto")
    if t.pack > 1 and cfg.model.conditional:
        fail("train.pack > 1 does not combine with model.conditional: true (a packed D sees several classes); "
             "set one of them off")
    if cfg.evaluate.num_samples > cfg.generate.num_samples:
        fail(f"evaluate.num_samples ({cfg.evaluate.num_samples}) must be <= generate.num_samples "
             f"({cfg.generate.num_samples}): evaluate scores the samples that generate wrote")


# keys that were renamed: an old params.yaml gets the new name instead of "unknown key"
RENAMED = {"train.mixed_precision": "train.precision (auto | fp32 | bf16; auto is what mixed_precision: true did)"}


def parse_params(raw: Any, source: str = "params.yaml") -> Config:
    reader = _Reader(source)
    cfg = reader.build(Config, raw, "")
    _cross_check(cfg, reader.fail)
    return cfg


def load_params(path: str | Path = "params.yaml") -> Config:
    """Read and validate a params file; raises UserError naming the key on any mistake."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such params file; run the stage from the repository root "
                        f"or pass --params PATH")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {one_line(exc, None)}") from None
    return parse_params(raw, str(path))


def fingerprint(cfg: Config, sections: tuple[str, ...]) -> dict[str, Any]:
    """The params of some sections (and the seed), as plain data for checkpoints and comparisons."""
    tree = cfg.to_dict()
    return {"seed": tree["seed"], **{s: tree[s] for s in sections}}


__all__ = ["Config", "DataConfig", "TaskConfig", "ModelConfig", "TrainConfig", "FeaturesConfig", "GenerateConfig",
           "EvaluateConfig", "load_params", "parse_params", "flatten", "fingerprint"]
