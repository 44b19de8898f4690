"""Recipes: named, reviewed sets of params, kept as files and run as DVC experiments.

`recipes/<name>.yaml` is a partial params.yaml: the same sections and keys, only those the
recipe changes. Its leading comment lines describe it. A recipe runs as

    gan recipe run grid25              # dvc exp run -S model.arch=mlp -S ... (every key of the file)
    gan recipe show grid25             # the exact `dvc exp run` line, to copy or edit
    gan recipe list                    # every recipe and its description

so a result in the README is reproduced by name, not by copying a long `-S` line. A recipe is
validated against the workspace's params.yaml before DVC starts: an unknown key or a bad value
stops with the recipe file and the key's path.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from gan.config import flatten, parse_params
from gan.errors import UserError, one_line

RECIPES_DIR = "recipes"


def recipes_dir(root: Path) -> Path:
    return root / RECIPES_DIR


def available(root: Path) -> list[str]:
    folder = recipes_dir(root)
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def recipe_path(root: Path, name: str) -> Path:
    path = recipes_dir(root) / f"{name}.yaml"
    if not path.is_file():
        names = available(root)
        raise UserError(f"no recipe {name!r}: {path} does not exist; "
                        + (f"choose one of {', '.join(names)}" if names else f"no recipes in {recipes_dir(root)}"))
    return path


def description(path: Path) -> str:
    """The recipe's leading `#` comment lines, joined."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return " ".join(x for x in lines if x)


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({one_line(exc, None)}); fix the {what}") from None


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` laid over it, section by section."""
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load(root: Path, name: str, params_file: str = "params.yaml") -> dict[str, Any]:
    """The recipe's flat changes {"model.arch": "mlp", ...}, validated on top of params.yaml."""
    path = recipe_path(root, name)
    changes = _read_yaml(path, "recipe")
    if not isinstance(changes, dict) or not changes:
        raise UserError(f"{path}: a recipe is a non-empty mapping of params.yaml sections and keys, "
                        f"got {type(changes).__name__}; write e.g. `train:\\n  lr_g: 0.0001`")
    params = root / params_file
    if not params.is_file():
        raise UserError(f"{params}: no such params file; run from the repository root")
    base = _read_yaml(params, "params file") or {}
    changes = {**flatten(changes), **leftovers(base, changes)}
    parse_params(merge(base, unflatten(changes)), f"{path} (over {params_file})")
    return changes


def leftovers(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The keys a previous experiment left in params.yaml that this recipe's task or architecture does not
    read, back to their defaults: after `gan recipe run inpaint`, params.yaml holds task.source: mask,
    which `sr4` (super-resolution) would otherwise refuse as a key it does not read. A recipe that names
    its architecture but not its task gets the architecture's task (the generation recipes predate tasks).
    The recipe's own keys are never touched."""
    from gan import catalog
    from gan.config import GenerateConfig, ModelConfig, TaskConfig
    from gan.task_params import TASK_KEYS

    merged = merge(base, changes)
    task, arch = merged.get("task", {}).get("name", TaskConfig.name), merged.get("model", {}).get("arch")
    own = flatten(changes)
    resets = {}
    if "model.arch" in own and "task.name" not in own and arch in catalog.ARCHITECTURES:
        task = catalog.ARCHITECTURES[arch].task  # a generation recipe names its arch, not its task
        if merged.get("task", {}).get("name", TaskConfig.name) != task:
            resets["task.name"] = task
    unread = [("task", key, TaskConfig()) for key, readers in TASK_KEYS.items() if task not in readers]
    if merged.get("task", {}).get("source", TaskConfig.source) != "mask":  # only inpainting reads these
        unread += [("task", key, TaskConfig()) for key in ("mask", "hole") if task in TASK_KEYS[key]]
    if task != "text":  # the prompts of a text-to-image experiment
        unread.append(("generate", "prompts", GenerateConfig()))
    if arch in catalog.ARCHITECTURES:
        unread += [("model", key, ModelConfig()) for key in catalog.MODEL_OPTIONS
                   if key not in catalog.ARCHITECTURES[arch].options]
    for section, key, defaults in unread:
        name, default = f"{section}.{key}", getattr(defaults, key)
        default = list(default) if isinstance(default, tuple) else default  # as YAML reads it back
        if name not in own and merged.get(section, {}).get(key, default) != default:
            resets[name] = default
    return resets


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{"a.b": 1} -> {"a": {"b": 1}}."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *sections, last = key.split(".")
        node = tree
        for section in sections:
            node = node.setdefault(section, {})
        node[last] = value
    return tree


def yaml_value(value: Any) -> str:
    """A value as `dvc exp run -S key=value` reads it (YAML flow style): [0.5,0.999], true, 0.0001."""
    if isinstance(value, (list, tuple)):  # a string item with a flow indicator (a prompt: "7, thick") is quoted
        return "[" + ",".join(json.dumps(v) if isinstance(v, str) and any(c in v for c in ",[]{}:#")
                              else yaml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, float):  # 1e-05 is a string to YAML 1.1 readers (PyYAML); 1.0e-05 is a float to all
        mantissa, e, exponent = repr(value).partition("e")
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else repr(value)
    text = str(value)
    return text if yaml.safe_load(text) == text else json.dumps(text)


def set_args(changes: dict[str, Any], seed: int | None = None) -> list[str]:
    """-S key=value for every change (and the seed when given), in the file's order."""
    items = dict(changes)
    if seed is not None:
        items["seed"] = seed
    out: list[str] = []
    for key, value in items.items():
        out += ["-S", f"{key}={yaml_value(value)}"]
    return out


def command(root: Path, name: str, seed: int | None = None, exp_name: str | None = None,
            extra: list[str] | None = None) -> list[str]:
    """The `dvc exp run` argv that runs recipe `name`."""
    argv = ["dvc", "exp", "run"] + (["-n", exp_name] if exp_name else [])
    return argv + set_args(load(root, name), seed) + list(extra or [])


def find_root(start: Path) -> Path:
    """The repository root: the nearest folder, from `start` up, that holds dvc.yaml."""
    for folder in (start, *start.parents):
        if (folder / "dvc.yaml").is_file():
            return folder
    raise UserError(f"no dvc.yaml in {start} or above; run `gan recipe` inside the project")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gan recipe", description="Run the recipes of recipes/*.yaml as "
                                     "DVC experiments.")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="every recipe and what it is")
    for action, text in (("show", "print the `dvc exp run` line of a recipe"),
                         ("run", "run a recipe as a DVC experiment")):
        p = sub.add_parser(action, help=text)
        p.add_argument("name", help="a file recipes/NAME.yaml")
        p.add_argument("--seed", type=int, help="set `seed` too (recipes do not set it)")
        p.add_argument("-n", "--exp-name", help="name of the DVC experiment")
    parser.epilog = "After `--`: more `dvc exp run` arguments, e.g. `-- --queue` or `-- -S train.steps=100`."
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    try:
        root = find_root(Path.cwd())
        if args.action == "list":
            for name in available(root):
                print(f"{name}: {description(recipe_path(root, name))}")
            return 0
        argv_run = command(root, args.name, args.seed, args.exp_name, extra)
    except UserError as exc:
        print(f"gan recipe: error: {exc}", file=sys.stderr)
        return 2
    print(shlex.join(argv_run), flush=True)
    if args.action == "show":
        return 0
    try:
        return subprocess.run(argv_run, cwd=root).returncode
    except FileNotFoundError:
        print("gan recipe: error: `dvc` is not on PATH; activate the project's venv (. .venv/bin/activate) "
              "or install it with `pip install -e .`", file=sys.stderr)
        return 2
