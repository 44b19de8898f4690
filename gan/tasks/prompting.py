"""text-to-image in the generate and evaluate stages: samples for prompts, the prompts figure and the scores.

generate writes, in samples.npz:
- `x`: G's images for the held-out images' own captions (the first caption of each, cycled to
  generate.num_samples), so the FID-style metrics compare like with like: the whole set;
- for digits (captions made from labels and attributes), `prompt_<phrasing>_x` and
  `prompt_<phrasing>_request` for each phrasing of gan.captions.PHRASINGS: every (digit, thickness,
  slant) request, PER_REQUEST times, worded in that phrasing (`held_out`: words never seen in training);
and `reports/generate/prompts.png`, one row of samples per prompt of generate.prompts.

evaluate scores each phrasing's images (`score_prompts`): the domain classifier's accuracy on the
requested digit, and per attribute the Spearman correlation between the requested level and the
thickness or slant measured on the pixels (gan.strokes.attributes), computed within each requested
digit and averaged over the digits (a 1 has less ink than an 8 at any level).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from gan import captions, sampling, text
from gan.images import to_stored
from gan.runtime import generator_for

PER_REQUEST = 10  # images per (digit, thickness, slant) request and phrasing: 900 per phrasing


def requests() -> np.ndarray:
    """Every (digit, thickness level, slant level), PER_REQUEST times: int64 (10 * 3 * 3 * PER_REQUEST, 3)."""
    grid = np.array([(d, t, s) for d in range(10) for t in range(captions.LEVELS) for s in range(captions.LEVELS)])
    return np.repeat(grid, PER_REQUEST, axis=0).astype(np.int64)


def worded(wanted: np.ndarray, phrasing: str, seed: int) -> list[str]:
    """The requests in a phrasing, with its own random templates and synonyms (seeded apart per phrasing)."""
    rng = np.random.default_rng([seed, 0x70726F6D, list(captions.PHRASINGS).index(phrasing)])  # "prom"
    return [captions.caption(int(d), int(t), int(s), captions.PHRASINGS[phrasing], rng) for d, t, s in wanted]


def _inputs(saved: dict[str, Any], prompts: list[str] | np.ndarray, count: int, seed: int, purpose: str,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts' tokens and `count` latents of the (seed, purpose) noise stream."""
    tokens = text.tokenize(list(prompts), int(saved["task_inputs"]["text"]["max_len"])).to(device)
    return tokens, sampling.noise(count, saved["latent_dim"], generator_for(seed, purpose, device), device)


def draw(generator: torch.nn.Module, saved: dict[str, Any], prompts: list[str] | np.ndarray, seed: int,
         purpose: str, batch_size: int, device: torch.device) -> np.ndarray:
    """uint8 images of G for each prompt, each from its own latent of the (seed, purpose) noise stream."""
    tokens, z = _inputs(saved, prompts, len(prompts), seed, purpose, device)
    with torch.no_grad():
        return to_stored(sampling.sample(generator, z, batch_size, tokens))


def rows(generator: torch.nn.Module, saved: dict[str, Any], prompts: list[str], per_prompt: int, seed: int,
         purpose: str, batch_size: int, device: torch.device) -> np.ndarray:
    """uint8 (P, per_prompt, H, W, C): a row of G's images per prompt, every row from the same latents, so the
    rows differ by the words alone."""
    tokens, z = _inputs(saved, prompts, per_prompt, seed, purpose, device)
    with torch.no_grad():
        images = to_stored(sampling.sample(generator, z.repeat(len(tokens), 1), batch_size,
                                           tokens.repeat_interleave(per_prompt, 0)))
    return images.reshape(len(tokens), per_prompt, *images.shape[1:])


def samples(cfg: Any, generator: torch.nn.Module, saved: dict[str, Any], prepared: Any,
            device: torch.device) -> dict[str, np.ndarray]:
    """samples.npz's arrays (see the module's docstring)."""
    g = cfg.generate
    held = prepared.test_caption[:, 0]
    whole = np.resize(held, g.num_samples)  # cycled
    arrays = {"x": draw(generator, saved, whole, cfg.seed, "generate", g.batch_size, device)}
    if "thresholds" in prepared.meta["text"]:  # digits: requests in every phrasing
        wanted = requests()
        for phrasing in captions.PHRASINGS:
            prompts = worded(wanted, phrasing, cfg.seed)
            arrays[f"prompt_{phrasing}_x"] = draw(generator, saved, prompts, cfg.seed, f"prompt-{phrasing}",
                                                  g.batch_size, device)
            arrays[f"prompt_{phrasing}_request"] = wanted
    return arrays


def figure(cfg: Any, generator: torch.nn.Module, saved: dict[str, Any], device: torch.device, path: Path) -> None:
    """prompts.png: for each of generate.prompts a row of grid_rows samples, the prompt written beside it; the
    same latents in every row."""
    prompts = list(cfg.generate.prompts)
    save_rows(prompts, rows(generator, saved, prompts, cfg.generate.grid_rows, cfg.seed, "prompts",
                            cfg.generate.batch_size, device), path)


def save_rows(prompts: list[str], images: np.ndarray, path: Path) -> None:
    """uint8 (P, R, H, W, C): one row per prompt, its text on the left."""
    plt = sampling.pyplot()
    count, per_row = images.shape[:2]
    fig, axes = plt.subplots(count, per_row, squeeze=False, dpi=100, figsize=(0.9 * per_row + 3.2, 0.9 * count))
    for r, prompt in enumerate(prompts):
        for c in range(per_row):
            image, ax = images[r, c], axes[r, c]
            ax.imshow(image[..., 0] if image.shape[2] == 1 else image, cmap="gray", vmin=0, vmax=255,
                      interpolation="nearest")
            ax.set_axis_off()
        axes[r, 0].text(-0.15, 0.5, f"“{prompt}”", transform=axes[r, 0].transAxes, ha="right", va="center",
                        fontsize=9)
    fig.subplots_adjust(left=0.3, right=1, bottom=0, top=1, wspace=0.04, hspace=0.08)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)


def spearman_within(requested: np.ndarray, measured: np.ndarray, digits: np.ndarray) -> float:
    """Spearman's rho of measured against requested level within each requested digit, averaged; a digit
    whose images all measure the same (a collapsed G) has no control over the attribute and counts 0."""
    from scipy.stats import spearmanr

    rhos = []
    for d in np.unique(digits):
        values = measured[digits == d]
        constant = np.ptp(values) == 0 or np.ptp(requested[digits == d]) == 0
        rhos.append(0.0 if constant else float(spearmanr(requested[digits == d], values).statistic))
    return float(np.mean(rhos))


def score_prompts(evaluator: Any, arrays: dict[str, np.ndarray], batch_size: int,
                  device: torch.device) -> dict[str, float]:
    """Per phrasing: `accuracy_prompt_<phrasing>`, `spearman_<attribute>_<phrasing>` (see the docstring)."""
    from gan.strokes import attributes

    scores = {}
    for phrasing in captions.PHRASINGS:
        if f"prompt_{phrasing}_x" not in arrays:
            continue
        images, wanted = arrays[f"prompt_{phrasing}_x"], arrays[f"prompt_{phrasing}_request"]
        logits = evaluator.view(images, batch_size, device).fake_logits
        if logits is not None:
            scores[f"accuracy_prompt_{phrasing}"] = float(np.mean(logits.argmax(1) == wanted[:, 0]))
        measured = attributes(images)
        for i, name in enumerate(captions.ATTRIBUTES, start=1):
            scores[f"spearman_{name}_{phrasing}"] = spearman_within(wanted[:, i], measured[name], wanted[:, 0])
    return scores
