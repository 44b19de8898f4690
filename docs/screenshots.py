"""Retake the MLflow UI screenshots of the docs from a finished default run.

    dvc repro                       # the default pipeline, in this checkout (its store: ./mlflow.db)
    python docs/screenshots.py      # -> docs/images/mlflow-run.png, docs/images/mlflow-grid.png

It starts a real `mlflow server` on a free local port over ./mlflow.db and photographs the run of
reports/train/run.json in headless Chromium (Debian's `chromium`), with the same browser helper the UI
test uses (tests/browser.py): the run's Model metrics tab (its curves) and the sample grid's preview in
its Artifacts tab. MLflow's assistant panel opens itself on a browser's first visit and would cover a
third of the page: the browser reaches the server through a small local proxy that adds one script to
the UI's page, setting the two local-storage entries of a user who has closed it (and collapsing the
chart sections other than the training curves). It also copies the run's sample grid and curves
(docs/images/grid.png, curves.png), which the README shows.
"""

from __future__ import annotations

import argparse
import http.server
import json
import shutil
import sys
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser import screenshot  # noqa: E402
from conftest import Server  # noqa: E402

VIEW = "?workflowType=machine_learning"  # the model-training view, not the GenAI one
# MLflow 3.17's useLocalStorage keys are `${key}_v${version}`, their values JSON
PAGE_SCRIPT = b"""<script>
localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");
setInterval(() => {  // fold the chart sections other than the training curves, once each
  for (const header of document.querySelectorAll('.du-bois-light-collapse-header[aria-expanded="true"]')) {
    const title = header.querySelector('[data-testid="experiment-view-compare-runs-section-header"] div div');
    if (title && title.textContent.trim() !== "Model metrics" && !header.dataset.folded) {
      header.dataset.folded = "1";
      header.click();
    }
  }
}, 500);
</script>"""


def proxy(upstream: str) -> http.server.ThreadingHTTPServer:
    """A local HTTP proxy to `upstream` that adds PAGE_SCRIPT to every HTML page; serving in a thread."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "accept-encoding")}
            request = urllib.request.Request(upstream + self.path, data=body, headers=headers, method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=60) as answer:
                    status, reply, payload = answer.status, answer.headers, answer.read()
            except urllib.error.HTTPError as exc:
                status, reply, payload = exc.code, exc.headers, exc.read()
            if "text/html" in reply.get("Content-Type", ""):
                payload = payload.replace(b"<head>", b"<head>" + PAGE_SCRIPT, 1)
            self.send_response(status)
            for key, value in reply.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


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
        front = proxy(server.uri)
        try:
            page = f"http://127.0.0.1:{front.server_address[1]}/#/experiments/1/runs/{run_id}"
            screenshot(page + "/model-metrics" + VIEW, str(args.out / "mlflow-run.png"), size="1600,1100",
                       wait_ms=120_000)
            steps = sorted((args.repo / "reports/train/samples").glob("step_*.png"))[-1].name
            screenshot(f"{page}/artifacts/samples/{steps}{VIEW}", str(args.out / "mlflow-grid.png"),
                       size="1600,1000", wait_ms=60_000)
        finally:
            front.shutdown()
            server.kill()
    print(f"screenshots: wrote {', '.join(sorted(p.name for p in args.out.glob('*.png')))} in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
