"""`python -m gan.tracking flush [--outbox DIR]`: send the outbox now, to the stores its entries name."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gan.tracking.drain import flush
from gan.tracking.outbox import Outbox, shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gan.tracking",
                                     description="The MLflow outbox: what the store could not take yet.")
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("flush", help="send the outbox to the stores its entries name, now")
    command.add_argument("--outbox", type=Path, default=None,
                         help="default: $GAN_MLFLOW_OUTBOX, else <repo root>/.mlflow-outbox")
    args = parser.parse_args(argv)
    outbox = Outbox(args.outbox) if args.outbox else Outbox.default()
    results = flush(outbox)
    for done in results:
        print(done.summary())
    if not results:
        print(f"MLflow: nothing to send in {shown(outbox.root)}/")
    return 1 if any(done.left for done in results) else 0


if __name__ == "__main__":
    sys.exit(main())
