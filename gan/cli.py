"""What every stage entry point shares: arguments, params loading, and user errors as one line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from gan import provenance
from gan.config import Config, load_params
from gan.errors import UserError


def check_checkout(script: str | Path) -> None:
    """The stage script and the gan/ package it imported must come from the same checkout.

    DVC hashes the checkout a stage runs in (for a queued experiment, a copy under
    .dvc/tmp/exps/); running another checkout's code through an editable install would record
    results under hashes of code that did not produce them.
    """
    checkout = Path(script).resolve().parents[1]
    if checkout != provenance.ROOT:
        raise UserError(f"{script} belongs to the checkout {checkout}, but imported gan/ from {provenance.ROOT}; "
                        f"run the stage script as `python stages/<stage>.py` so that it puts its own checkout "
                        f"first on sys.path")


def run_stage(name: str, paths: dict[str, str], body: Callable[[Config, argparse.Namespace], Any]) -> None:
    """Parse `--params` and one `--<path>` option per entry of `paths` (name -> default), then run.

    A UserError is printed as `<stage>: error: <message>` and exits 2; anything else is a
    bug and keeps its traceback.
    """
    parser = argparse.ArgumentParser(prog=f"stages/{name}.py")
    parser.add_argument("--params", default="params.yaml", help="params file (default: %(default)s)")
    for option, default in paths.items():
        parser.add_argument(f"--{option.replace('_', '-')}", dest=option, type=Path, default=Path(default))
    args = parser.parse_args()
    try:
        check_checkout(sys.argv[0])
        cfg = load_params(args.params)
        body(cfg, args)
    except UserError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        sys.exit(2)
