"""Retake the MLflow UI screenshots of the docs from a finished default run.

    dvc repro                       # the default pipeline, in this checkout (its store: ./mlflow.db)
    python docs/screenshots.py      # -> docs/images/mlflow-run.png, docs/images/mlflow-grid.png

It starts a real `mlflow server` on a free local port over ./mlflow.db and photographs the run of
reports/train/run.json in headless Chromium (Debian's `chromium`), with the same browser helper the UI
test uses (tests/browser.py): the run's Model metrics tab (its curves) and the sample grid's preview in
its Artifacts tab. The browser keeps one profile for all its visits, so MLflow's assistant panel, which
opens itself on a browser's first visit, is closed in the pictures. It also copies the run's sample grid
and curves (docs/images/grid.png, curves.png), which the README shows.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser import rendered_dom, screenshot  # noqa: E402
from conftest import Server  # noqa: E402

VIEW = "?workflowType=machine_learning"  # the model-training view, not the GenAI one


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="the checkout that ran `dvc repro`")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    link = args.repo / "reports/train/run.json"
    if not link.is_file() or not (args.repo / "mlflow.db").is_file():
        print(f"screenshots: error: no finished run in {args.repo} (reports/train/run.json and mlflow.db); "
              f"run `dvc repro` there first", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for made, shown in (("reports/generate/grid.png", "grid.png"), ("reports/train/curves.png", "curves.png")):
        shutil.copyfile(args.repo / made, args.out / shown)
    run_id = json.loads(link.read_text())["run_id"]
    with tempfile.TemporaryDirectory(prefix="screenshots-") as folder:
        server = Server(Path(folder), store=args.repo / "mlflow.db")
        server.start()
        try:
            page = f"{server.uri}/#/experiments/1/runs/{run_id}"
            profile = str(Path(folder) / "profile")
            rendered_dom(page + VIEW, wait_ms=30_000, profile=profile)  # the first visit opens the assistant panel
            screenshot(page + "/model-metrics" + VIEW, str(args.out / "mlflow-run.png"), size="1600,1100",
                       wait_ms=60_000, profile=profile)
            steps = sorted((args.repo / "reports/train/samples").glob("step_*.png"))[-1].name
            screenshot(f"{page}/artifacts/samples/{steps}{VIEW}", str(args.out / "mlflow-grid.png"),
                       size="1600,1000", wait_ms=30_000, profile=profile)
        finally:
            server.kill()
    print(f"screenshots: wrote {', '.join(sorted(p.name for p in args.out.glob('*.png')))} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
