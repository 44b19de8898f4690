"""`gan` / `python -m gan`: the project's command line (today: `gan recipe ...`)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"recipe": "run, show or list the recipes of recipes/*.yaml as DVC experiments"}
    if not argv or argv[0] not in commands:
        print("usage: gan COMMAND ...\n\ncommands:\n" + "\n".join(f"  {k:<8} {v}" for k, v in commands.items()),
              file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from gan import recipes

    return recipes.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
