"""`gan sample`, `gan interpolate` and `gan arithmetic`: pictures (or arrays) from a trained generator,
wherever it is.

    gan sample --model models:/gan-mnist5k-dcgan@best -n 16 -o grid.png
    gan sample --model runs:/<run id> -n 1000 -o samples.npz --seed 3
    gan sample --model models/generator.pt --class 7 -n 8 -o sevens.png
    gan interpolate --model models:/gan-mnist5k-dcgan/2 -o walk.png
    gan arithmetic --model models:/gan-mnist5k-dcgan@best --expr "7 - 1 + 4" -o arithmetic.png
    gan apply --model models:/gan-mnist5k-translation-unet@best -i edges.png -o digit.png
    gan apply --model models:/gan-photos-super_resolution-srresnet@best -i small.png -o large.png
    gan apply --model models/generator.pt -i data/prepared/test.npz -o outputs.npz

--model is a local generator file (the DVC output models/generator.pt) or an MLflow URI:
runs:/RUN_ID, models:/NAME/VERSION or models:/NAME@ALIAS, read from MLFLOW_TRACKING_URI (default:
./mlflow.db). Every route loads a state dict with torch.load(weights_only=True) into this
package's own classes: nothing from the store is unpickled.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan.errors import UserError
from gan.images import to_stored


def load_model(uri: str, device: torch.device, task: str = "generation") -> tuple[torch.nn.Module, dict[str, Any], str]:
    """(G in eval mode, its metadata, where it came from) for a path or an MLflow URI; `task`: what the
    command needs ("generation": noise -> image only; "sample": that or text -> image; "paired": translation
    or super-resolution)."""
    generator, saved, source = _load(uri, device)
    kind = saved.get("task", "generation")
    if task in ("generation", "sample") and kind not in ("generation", "text"):
        raise UserError(f"--model {uri} is a {kind} model (it maps images to images); use `gan apply`")
    if task == "generation" and kind == "text":
        raise UserError(f"--model {uri} is a text-to-image model; use `gan sample --model {uri} --prompt \"...\"`")
    if task == "paired" and kind in ("generation", "text"):
        raise UserError(f"--model {uri} is a {kind} model (it draws images, it does not map them); use `gan sample`")
    return generator, saved, source


def _load(uri: str, device: torch.device) -> tuple[torch.nn.Module, dict[str, Any], str]:
    from gan.models import load_generator

    if uri.startswith(("runs:/", "models:/")):
        from gan import tracking

        with tempfile.TemporaryDirectory(prefix="gan-model-") as folder:
            path, run_id = tracking.fetch_generator(uri, Path(folder))
            generator, saved = load_generator(path, device)
        return generator, saved, f"{uri} (run {run_id})"
    path = Path(uri)
    if not path.is_file():
        raise UserError(f"{uri}: no such generator file, and not an MLflow URI (runs:/..., models:/...); "
                        f"run `dvc repro train` to write models/generator.pt")
    generator, saved = load_generator(path, device)
    return generator, saved, str(path)


def _classes(saved: dict[str, Any], wanted: int | None, count: int, device: torch.device) -> torch.Tensor | None:
    from gan.sampling import balanced_labels

    classes = int(saved.get("num_classes", 0))
    if wanted is None:
        return balanced_labels(count, classes, device) if classes else None
    if not classes:
        raise UserError(f"--class {wanted}: this generator is unconditional (trained with model.conditional: "
                        f"false); leave --class out")
    if not 0 <= wanted < classes:
        raise UserError(f"--class {wanted}: this generator knows classes 0..{classes - 1}")
    return torch.full((count,), wanted, dtype=torch.long, device=device)


def _write(samples: torch.Tensor, labels: torch.Tensor | None, out: Path, rows: int) -> None:
    from gan import sampling

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npz":
        extra = {"y": labels.cpu().numpy()} if labels is not None else {}
        np.savez(out, x=to_stored(samples), **extra)
    elif samples.dim() == 4:
        sampling.save_grid(samples, out, rows)
    else:
        sampling.save_scatter(np.empty((0, 2), dtype=np.float32), samples.cpu().numpy(), out)


def _output(path: str) -> Path:
    out = Path(path)
    if out.suffix not in (".png", ".npz"):
        raise UserError(f"-o {path}: write a .png (a grid, or a scatter of 2-D points) or a .npz (the samples)")
    return out


def sample(args: argparse.Namespace) -> int:
    from gan import sampling
    from gan.runtime import generator_for

    out = _output(args.output)
    if args.n < 1:
        raise UserError(f"-n {args.n}: ask for at least one sample")
    device = torch.device("cpu")
    generator, saved, source = load_model(args.model, device, task="sample")
    if saved.get("task") == "text" or args.prompt:
        return _sample_prompts(args, generator, saved, source, out)
    z = sampling.noise(args.n, saved["latent_dim"], generator_for(args.seed, "gan-sample", device), device)
    labels = _classes(saved, args.class_, args.n, device)
    samples = sampling.sample(generator, z, 500, labels)
    _write(samples, labels, out, args.rows or math.ceil(math.sqrt(args.n)))
    print(f"gan sample: {args.n} samples of {source}, seed {args.seed} -> {out}")
    return 0


def _sample_prompts(args: argparse.Namespace, generator: torch.nn.Module, saved: dict[str, Any], source: str,
                    out: Path) -> int:
    """A text-to-image G: -n samples for each --prompt, one row per prompt (the same latents in every row)."""
    from gan.tasks import prompting

    if saved.get("task") != "text":
        raise UserError(f"--prompt: {args.model} is not a text-to-image model (task {saved.get('task', 'generation')})"
                        f"; leave --prompt out")
    if not args.prompt or not all(p.strip() for p in args.prompt):
        raise UserError(f"{args.model} is a text-to-image model: say what to draw, e.g. "
                        f"--prompt \"a thick 7 leaning right\" (repeat --prompt for more rows)")
    if args.class_ is not None:
        raise UserError("--class: a text-to-image model takes --prompt, not a class; name the digit in the prompt")
    images = prompting.rows(generator, saved, args.prompt, args.n, args.seed, "gan-sample", 500, torch.device("cpu"))
    if out.suffix == ".npz":
        np.savez(out, x=images.reshape(-1, *images.shape[2:]),
                 prompt=np.repeat(np.array(args.prompt, dtype=np.str_), args.n))
    else:
        prompting.save_rows(args.prompt, images, out)
    print(f"gan sample: {args.n} samples for each of {len(args.prompt)} prompts of {source}, seed {args.seed} -> {out}")
    return 0


def interpolate(args: argparse.Namespace) -> int:
    from gan import sampling
    from gan.generation import walks

    out = _output(args.output)
    device = torch.device("cpu")
    generator, saved, source = load_model(args.model, device)
    walk = walks(generator, saved["latent_dim"], int(saved.get("num_classes", 0)), args.rows, args.steps,
                 args.seed, device)
    if out.suffix == ".npz" or walk.dim() == 5:
        _write(walk.flatten(0, 1), None, out, args.steps)
    else:
        sampling.save_walks(walk.cpu().numpy(), out)
    print(f"gan interpolate: {args.rows} walks of {args.steps} steps of {source}, seed {args.seed} -> {out}")
    return 0


def arithmetic(args: argparse.Namespace) -> int:
    from gan.arithmetic import Explorer, attribute_sections, save_figure

    out = _output(args.output)
    if out.suffix != ".png":
        raise UserError(f"-o {args.output}: gan arithmetic draws a figure; write a .png")
    generator, saved, source = load_model(args.model, torch.device("cpu"))
    if int(saved.get("num_classes", 0)):
        raise UserError("gan arithmetic takes an unconditional generator (its classes come from the classifier)")
    explorer = Explorer(generator, saved["latent_dim"], args.samples, args.seed)
    sections, measured = attribute_sections(explorer)
    if args.expr:
        from gan.evaluator import load_evaluator

        evaluator = load_evaluator(Path(args.evaluator))
        if evaluator.kind != "classifier":
            raise UserError(f"--evaluator {args.evaluator}: a {evaluator.kind} evaluator calls no classes; "
                            f"use the domain classifier of labelled data, or leave --expr out")
        _, logits = evaluator.embed(explorer.images, 500)
        images, names = explorer.class_sum(logits, args.expr)
        calls = evaluator.embed(to_stored(images), 500)[1].argmax(1)
        at = names.index("=")
        sections.insert(0, (f"{args.expr}: " + " ".join(f"{n}({c})" for n, c in zip(names, calls)), images,
                            len(images)))
        print(f"gan arithmetic: {args.expr} -> the classifier calls the sum {calls[at]} "
              f"and its variations {', '.join(map(str, calls[at + 1:]))}")
    save_figure(sections, out)
    for name, values in measured.items():
        print(f"gan arithmetic: {name} along its direction: " + " ".join(f"{v:.3f}" for v in values))
    print(f"gan arithmetic: {source}, {args.samples} samples, seed {args.seed} -> {out}")
    return 0


def _read_sources(paths: list[str], saved: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The inputs of a paired task's G, stored like prepare's sources (uint8 NHWC), and their names.

    An .npz gives its `source` array (prepare's test.npz as it is); a PNG (or JPEG) is converted to the
    source's channels, and for inpainting its transparent pixels are the hole. Super-resolution takes any
    size (the network is convolutional); translation takes the size it was trained on.
    """
    from PIL import Image

    from gan.data import is_npz

    height, width, channels = saved["source_shape"]
    inpainting = saved["task"] == "translation" and channels in (2, 4)  # the image's channels and the mask
    colour = channels - 1 if inpainting else channels
    arrays, names = [], []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"-i {name}: no such file")
        if path.suffix == ".npz":
            if not is_npz(path):
                raise UserError(f"-i {name}: not an .npz archive")
            with np.load(path) as data:
                if "source" not in data.files:
                    raise UserError(f"-i {name}: no 'source' array (it holds {', '.join(data.files)}); save the "
                                    f"inputs as uint8 (N, H, W, {channels}) under 'source'")
                batch = data["source"]
            if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[3] != channels:
                raise UserError(f"-i {name}: 'source' is {batch.dtype} {batch.shape}; this model takes uint8 "
                                f"(N, H, W, {channels})")
            arrays += list(batch)
            names += [f"{path.stem}_{i:04d}" for i in range(len(batch))]
            continue
        try:
            image = Image.open(path)
            image.load()
        except OSError as exc:
            raise UserError(f"-i {name}: not an image ({exc})") from None
        pixels = np.asarray(image.convert("L" if colour == 1 else "RGB"))
        pixels = pixels[..., None] if pixels.ndim == 2 else pixels
        if inpainting:
            alpha = np.asarray(image.convert("RGBA"))[..., 3]
            hole = alpha < 128
            if not hole.any():
                raise UserError(f"-i {name}: an inpainting model needs the hole: make the missing pixels "
                                f"transparent (alpha 0)")
            pixels = np.where(hole[..., None], 0, pixels)
            pixels = np.concatenate([pixels, (hole * 255)[..., None]], axis=-1).astype(np.uint8)
        arrays.append(pixels)
        names.append(path.stem)
    shapes = {a.shape for a in arrays}
    if saved["task"] == "translation" and shapes != {(height, width, channels)}:
        raise UserError(f"-i: this model translates {height} x {width} images; got "
                        f"{', '.join(f'{s[0]} x {s[1]}' for s in sorted(shapes))}; resize the inputs")
    if len(shapes) > 1:
        raise UserError("-i: the inputs differ in size; apply them one size at a time")
    return np.stack(arrays), names


def apply(args: argparse.Namespace) -> int:
    """A paired task's G on the user's own files: weights only (a state dict into this package's classes)."""
    from PIL import Image

    from gan.tasks.outputs import outputs

    out = Path(args.output)
    device = torch.device("cpu")
    generator, saved, source = load_model(args.model, device, task="paired")
    inputs, names = _read_sources(args.input, saved)
    results = outputs(generator, inputs, 64, device)
    if out.suffix == ".npz":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(out, x=results)
    elif out.suffix in (".png", ".jpg", ".jpeg"):
        if len(results) > 1:
            raise UserError(f"-o {args.output}: {len(results)} outputs; write a folder (-o outputs/) or an .npz")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(results[0].squeeze(-1) if results.shape[-1] == 1 else results[0]).save(out)
    else:
        out.mkdir(parents=True, exist_ok=True)
        for name, image in zip(names, results):
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(out / f"{name}.png")
    print(f"gan apply: {saved['task']} by {source} on {len(results)} input(s) "
          f"({inputs.shape[1]} x {inputs.shape[2]} -> {results.shape[1]} x {results.shape[2]}) -> {out}")
    return 0


def main(command: str, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"gan {command}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True,
                        help="models/generator.pt, runs:/RUN_ID, models:/NAME/VERSION or models:/NAME@ALIAS")
    if command == "apply":
        parser.add_argument("-i", "--input", action="append", required=True,
                            help="an input image (PNG; repeat -i for more) or an .npz with a 'source' array")
        parser.add_argument("-o", "--output", required=True,
                            help="FILE.png (one input), a folder (one PNG per input) or FILE.npz (all outputs)")
    else:
        parser.add_argument("-o", "--output", required=True, help="FILE.png (a picture) or FILE.npz (the samples)")
        parser.add_argument("--seed", type=int, default=0, help="the latents' seed (default: %(default)s)")
    if command == "arithmetic":
        parser.add_argument("--expr", help="class arithmetic, e.g. '7 - 1 + 4' (needs --evaluator's classifier)")
        parser.add_argument("--evaluator", default="models/evaluator.pt",
                            help="the domain classifier that names the classes (default: %(default)s)")
        parser.add_argument("--samples", type=int, default=2000,
                            help="samples the traits are read from (default: %(default)s)")
    elif command == "sample":
        parser.add_argument("-n", type=int, default=64, help="samples (default: %(default)s)")
        parser.add_argument("--class", dest="class_", type=int, help="the class a conditional G is asked for")
        parser.add_argument("--prompt", action="append",
                            help="a text-to-image G's caption; repeat for several (one row of -n samples each)")
        parser.add_argument("--rows", type=int, help="images per grid row (default: a square)")
    elif command == "interpolate":
        parser.add_argument("--rows", type=int, default=8, help="walks (default: %(default)s)")
        parser.add_argument("--steps", type=int, default=10, help="points along each walk (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        return {"sample": sample, "interpolate": interpolate, "arithmetic": arithmetic, "apply": apply}[command](args)
    except UserError as exc:
        print(f"gan {command}: error: {exc}", file=sys.stderr)
        return 2
