"""The generate stage: samples for evaluate, and the pictures a person looks at first."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gan import catalog, sampling, tracking
from gan.arithmetic import Explorer, attribute_sections, save_figure
from gan.models import load_generator
from gan.config import Config
from gan.data import Prepared, load_prepared
from gan.errors import UserError
from gan.evaluator import load_evaluator
from gan.metrics.pairwise import nearest_rows
from gan.neighbours import save_neighbour_figure
from gan.images import to_stored
from gan.runtime import generator_for, make_deterministic, resolve_device


ARITHMETIC_SAMPLES = 1000  # samples the attribute directions of attributes.png are read from
NEIGHBOUR_ROWS = 8  # samples of neighbours.png: the first of samples.npz, each beside its 3 nearest training images


@dataclass(frozen=True)
class GeneratePaths:
    generator: Path  # models/generator.pt
    prepared: Path  # data/prepared (real points for the 2-D plots)
    run_link: Path  # reports/train/run.json
    out: Path  # data/generated: samples.npz
    figures: Path  # reports/generate: grid.png, interpolation.png, attributes.png, neighbours.png, scatter.png
    evaluator: Path  # models/evaluator.pt: the feature space of neighbours.png


def generate(cfg: Config, paths: GeneratePaths) -> Path:
    """Write generate.num_samples samples of the trained G, stored like the real data."""
    device = resolve_device(cfg.train.device)
    make_deterministic(cfg.seed, device)
    generator, saved = load_generator(paths.generator, device)
    outputs = catalog.OUTPUTS[saved["task"]]
    if outputs == "prompted":
        return _generate_text(cfg, paths, generator, saved, device)
    if outputs == "paired":
        return _generate_paired(cfg, paths, generator, saved, device)
    g, classes = cfg.generate, int(saved.get("num_classes", 0))
    samples, labels = draw_samples(generator, saved, g.num_samples, cfg.seed, g.batch_size, device)
    images = samples.ndim == 4
    _fresh(paths)
    np.savez(paths.out / "samples.npz", x=samples, **({"y": labels} if labels is not None else {}))
    walks = _interpolate(generator, cfg, saved["latent_dim"], classes, device)  # (R, T, C, H, W) or (R, T, 2)
    if images:
        _grid(generator, cfg, saved["latent_dim"], classes, device, paths.figures / "grid.png")
        sampling.save_grid(walks.flatten(0, 1), paths.figures / "interpolation.png", g.interpolation_steps)
        _neighbours(samples[:NEIGHBOUR_ROWS], paths, paths.figures / "neighbours.png")
        if not classes:  # latent directions of stroke thickness and slant (gan.arithmetic; `gan arithmetic`)
            explorer = Explorer(generator.cpu(), saved["latent_dim"], ARITHMETIC_SAMPLES, cfg.seed)
            save_figure(attribute_sections(explorer)[0], paths.figures / "attributes.png")
            generator.to(device)
    else:
        real = load_prepared(paths.prepared)
        modes = np.asarray(real.meta["modes"]) if "modes" in real.meta else None
        sampling.save_scatter(real.test_x, samples, paths.figures / "scatter.png", modes)
        sampling.save_walks(walks.cpu().numpy(), paths.figures / "interpolation.png", real.test_x)
    _publish(cfg, paths)
    print(f"generate: {g.num_samples} samples to {paths.out / 'samples.npz'}, figures in {paths.figures}")
    return paths.out / "samples.npz"


def _generate_paired(cfg: Config, paths: GeneratePaths, generator: torch.nn.Module, saved: dict,
                     device: torch.device) -> Path:
    """A paired task: G's output for every held-out source (in order, so output i answers pair i), and
    the triptychs (source | output | target) a person looks at first (gan.tasks.outputs)."""
    from gan.tasks import outputs as paired

    prepared = _prepared_for(paths, saved)
    outputs = paired.outputs(generator, prepared.test_source, cfg.generate.batch_size, device)
    _fresh(paths)
    paths.figures.mkdir(parents=True)
    np.savez(paths.out / "samples.npz", x=outputs)
    paired.figures(saved, prepared, outputs, paths.figures)
    _publish(cfg, paths)
    print(f"generate: {len(outputs)} outputs of {saved['task']} on the held-out sources to "
          f"{paths.out / 'samples.npz'}, figures in {paths.figures}")
    return paths.out / "samples.npz"


def _generate_text(cfg: Config, paths: GeneratePaths, generator: torch.nn.Module, saved: dict,
                   device: torch.device) -> Path:
    """Text-to-image: images for the held-out captions and for requests in every phrasing, the prompts
    figure (one row per prompt of generate.prompts) and the nearest training images (gan.tasks.prompting)."""
    from gan.tasks import prompting

    prepared = _prepared_for(paths, saved)
    arrays = prompting.samples(cfg, generator, saved, prepared, device)
    _fresh(paths)
    np.savez(paths.out / "samples.npz", **arrays)
    prompting.figure(cfg, generator, saved, device, paths.figures / "prompts.png")
    _neighbours(arrays["x"][:NEIGHBOUR_ROWS], paths, paths.figures / "neighbours.png")
    _publish(cfg, paths)
    print(f"generate: {len(arrays['x'])} images for the held-out captions and "
          f"{sum(len(v) for k, v in arrays.items() if k.endswith('_request'))} for prompted requests to "
          f"{paths.out / 'samples.npz'}; prompts.png in {paths.figures}")
    return paths.out / "samples.npz"


def _prepared_for(paths: GeneratePaths, saved: dict) -> Prepared:
    """The prepared data G was trained on; other data is a UserError."""
    prepared = load_prepared(paths.prepared)
    if prepared.meta["sha256"] != saved["data_sha256"]:
        raise UserError(f"{paths.generator} was trained on other data than {paths.prepared}; run `dvc repro train`")
    return prepared


def _fresh(paths: GeneratePaths) -> None:
    """Empty the samples' and the figures' folders (the samples' one created): nothing of an older run stays."""
    shutil.rmtree(paths.out, ignore_errors=True)
    shutil.rmtree(paths.figures, ignore_errors=True)
    paths.out.mkdir(parents=True)


def _publish(cfg: Config, paths: GeneratePaths) -> None:
    """The training run in MLflow gets generate's params and every figure."""
    run = tracking.reopen_run(paths.run_link, {f"generate.{k}": v for k, v in cfg.to_dict()["generate"].items()})
    for figure in sorted(paths.figures.glob("*.png")):
        run.log_artifact(figure, "generate")
    run.finish(stage="generate")


def _neighbours(samples: np.ndarray, paths: GeneratePaths, path: Path) -> None:
    """The first samples, each beside its 3 nearest training images in the evaluator's feature space
    (StudioGAN's k-NN figure): a copying G shows its training images again, with distances near 0."""
    evaluator, real = load_evaluator(paths.evaluator), load_prepared(paths.prepared)
    if evaluator.data_sha256 != real.meta["sha256"]:
        raise UserError(f"{paths.evaluator} was built for other data than {paths.prepared}; "
                        f"run `dvc repro features`")
    features, _ = evaluator.embed(samples, batch_size=len(samples))
    indices, distances = nearest_rows(features, evaluator.train_features, k=3)
    kind = evaluator.kind.replace("_", "-")
    save_neighbour_figure(samples, real.train_x, indices, distances, path,
                          title=f"nearest training images in the {kind} evaluator's features")


def draw_samples(generator: torch.nn.Module, saved: dict, count: int, seed: int, batch_size: int,
                 device: torch.device) -> tuple[np.ndarray, np.ndarray | None]:
    """`count` samples stored like the real data, from the noise stream of `seed`.

    A conditional G is asked for every class in turn (balanced), and the requested labels
    come back with the samples, so that evaluate can check the classes were honoured.
    """
    classes = int(saved.get("num_classes", 0))
    z = sampling.noise(count, saved["latent_dim"], generator_for(seed, "generate", device), device)
    y = sampling.balanced_labels(count, classes, device) if classes else None
    fake = sampling.sample(generator, z, batch_size, y)  # (N, C, H, W) in [-1, 1] or (N, 2)
    return to_stored(fake), (y.cpu().numpy() if y is not None else None)


def _grid(generator: torch.nn.Module, cfg: Config, latent_dim: int, classes: int, device: torch.device,
          path: Path) -> None:
    """grid_rows x grid_rows samples; for a conditional G, one row per class."""
    cols = cfg.generate.grid_rows
    y = sampling.class_rows(classes, cols, device) if classes else None
    z = sampling.noise((classes or cols) * cols, latent_dim, generator_for(cfg.seed, "grid", device), device)
    sampling.save_grid(sampling.sample(generator, z, cfg.generate.batch_size, y), path, cols)


def _interpolate(generator: torch.nn.Module, cfg: Config, latent_dim: int, classes: int,
                 device: torch.device) -> torch.Tensor:
    g = cfg.generate
    return walks(generator, latent_dim, classes, g.interpolation_rows, g.interpolation_steps, cfg.seed, device,
                 g.batch_size)


def walks(generator: torch.nn.Module, latent_dim: int, classes: int, rows: int, steps: int, seed: int,
          device: torch.device, batch_size: int = 500) -> torch.Tensor:
    """Rows of G along great-circle walks between random latent pairs (row r in class r % classes):
    (rows, steps, C, H, W) or (rows, steps, 2). The same walk for the same seed, wherever G came from."""
    rng = generator_for(seed, "interpolation", device)
    ends = sampling.noise(2 * rows, latent_dim, rng, device)
    t = torch.linspace(0, 1, steps, device=device)
    z = sampling.slerp(ends[0::2], ends[1::2], t)  # (R, T, D)
    y = sampling.balanced_labels(rows, classes, device).repeat_interleave(steps) if classes else None
    out = sampling.sample(generator, z.flatten(0, 1), batch_size, y)
    return out.unflatten(0, (rows, steps))
