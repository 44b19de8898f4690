"""`gan` / `python -m gan`: the project's command line: recipes, and sampling a trained generator."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"recipe": "run, show or list the recipes of recipes/*.yaml as DVC experiments",
                "sample": "a grid (.png) or the samples (.npz) of a trained generator (a file or an MLflow URI)",
                "interpolate": "great-circle walks between latent pairs of a trained generator",
                "arithmetic": "latent arithmetic: class sums ('7 - 1 + 4') and stroke thickness / slant directions",
                "apply": "a translation or super-resolution model on your own images (PNG or .npz in and out)"}
    if not argv or argv[0] not in commands:
        print("usage: gan COMMAND ...\n\ncommands:\n" + "\n".join(f"  {k:<12} {v}" for k, v in commands.items()),
              file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] == "recipe":
        from gan import recipes

        return recipes.main(argv[1:])
    from gan import commands as sampling_commands

    return sampling_commands.main(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
