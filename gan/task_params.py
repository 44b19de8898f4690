"""The task.* keys of params.yaml: which task reads which key, and the rules that tie a task to the rest.

Called by gan.config once every key has its type and range (`check_task`); gan.recipes reads TASK_KEYS to
reset the keys a recipe's task does not read.
"""

from __future__ import annotations

import typing
from typing import Any, Callable

import yaml

from gan import catalog
from gan.config import Config, GenerateConfig, TaskConfig

def _yaml(value: Any) -> str:
    """A value as params.yaml writes it (false, [], 0.0)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


# the task.* keys besides name, and the tasks that read each
TASK_KEYS: dict[str, tuple[str, ...]] = {
    "source": ("translation",), "mask": ("translation",), "hole": ("translation",), "scale": ("super_resolution",),
    "content_weight": ("translation", "super_resolution"), "adversarial_weight": ("translation", "super_resolution"),
    "feature_weight": ("translation", "super_resolution"),
    "encoder": ("text",), "text_dim": ("text",), "captions": ("text",), "mismatch": ("text",),
    "align_steps": ("text",), "align_weight": ("text",),
}


def check_task(cfg: Config, kind: str, fail: Callable[[str], typing.NoReturn]) -> None:
    """The task, its architecture and the keys that only generation reads."""
    task, arch = cfg.task, cfg.model.arch
    owner = catalog.ARCHITECTURES[arch].task
    if task.name == "text":
        _check_text(cfg, fail)
    elif owner != task.name:
        fitting = [n for n, a in catalog.ARCHITECTURES.items() if a.task == task.name]
        fail(f"model.arch={arch} is a {owner} architecture, but task.name={task.name}; set model.arch: "
             f"{' or '.join(fitting)}")
    defaults = TaskConfig()
    for key, readers in TASK_KEYS.items():
        if task.name not in readers and getattr(task, key) != getattr(defaults, key):
            fail(f"task.{key} applies to task.name={' or '.join(readers)}, not {task.name}; remove it")
    if task.name != "text" and cfg.generate.prompts != GenerateConfig().prompts:
        fail(f"generate.prompts applies to task.name=text, not {task.name}; remove it")
    t = cfg.train
    if t.mmd_weight and not t.mmd_bandwidths:
        fail(f"train.mmd_weight={t.mmd_weight} needs task.name: generation and a list of kernel widths in "
             f"train.mmd_bandwidths (got task.name={task.name}, train.mmd_bandwidths=[]); set them, or "
             f"train.mmd_weight: 0")
    if task.name in ("generation", "text"):
        return
    for key in ("mask", "hole"):
        if task.source != "mask" and getattr(task, key) != getattr(defaults, key):
            fail(f"task.{key} applies to task.source=mask, not {task.source}; remove it")
    if kind != "images":
        fail(f"task.name={task.name} works on images, but data.name={cfg.data.name} gives {kind}")
    if task.name == "super_resolution" and cfg.data.image_size % task.scale:
        fail(f"data.image_size ({cfg.data.image_size}) must be divisible by task.scale ({task.scale})")
    if task.content_weight == 0 and task.adversarial_weight == 0 and task.feature_weight == 0:
        fail("task.content_weight, task.adversarial_weight and task.feature_weight are all 0: G would learn "
             "nothing; set one > 0")
    generation_only = _generation_only(cfg)  # G's output on a source is deterministic: no repeats
    if task.name == "translation":  # D judges (source, image) pairs: an augmentation would have to move both
        generation_only.append(("train.augment", list(cfg.train.augment), []))
    _refuse_switched_on(generation_only, task.name, fail)


def _check_text(cfg: Config, fail: Callable[[str], typing.NoReturn]) -> None:
    """Text-to-image: captions must come from somewhere, and G takes a sentence instead of a class."""
    if cfg.data.name not in catalog.CAPTIONED_DATASETS:
        fail(f"task.name=text needs captions, which data.name={cfg.data.name} does not have; use mnist5k or mnist "
             f"(captions made from the label and the stroke's thickness and slant) or folder (a .txt of captions "
             f"beside each image)")
    if not catalog.ARCHITECTURES[cfg.model.arch].text:
        fitting = " or ".join(n for n, a in catalog.ARCHITECTURES.items() if a.text)
        fail(f"model.arch={cfg.model.arch} cannot be conditioned on text (task.name=text); set model.arch: {fitting}")
    if cfg.task.align_weight and not cfg.task.align_steps:
        fail("task.align_weight > 0 needs a fitted judge: set task.align_steps > 0 (or task.align_weight: 0)")
    _refuse_switched_on(_generation_only(cfg), "text", fail)


def _generation_only(cfg: Config) -> list[tuple[str, Any, Any]]:
    """(key, value, off) of what only noise -> image generation implements."""
    m, t = cfg.model, cfg.train
    return [("model.conditional", m.conditional, False), ("model.latent_components", m.latent_components, 0),
            ("train.pack", t.pack, 1), ("train.ema_half_life_images", t.ema_half_life_images, 0.0),
            ("train.mmd_weight", t.mmd_weight, 0.0),
            ("evaluate.repeats", cfg.evaluate.repeats, 1)]


def _refuse_switched_on(keys: list[tuple[str, Any, Any]], task: str, fail: Callable[[str], typing.NoReturn]) -> None:
    for key, value, off in keys:
        if value != off:
            fail(f"{key}={_yaml(value)} is not implemented for task.name={task}; set {key}: {_yaml(off)}")
