"""Headless Chromium (Debian's `chromium` package) for the tests that check what a user sees in a browser.

The browser runs with no network: a proxy that refuses every connection and a resolver that finds
no host, so a page that needs the internet fails here as it would offline. Loopback stays
reachable (a local `mlflow server`). Tests skip, saying why, where chromium is not installed;
.ci/run installs it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OFFLINE = ["--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1;localhost",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]


def chromium(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--disable-dev-shm-usage", f"--user-data-dir={profile}", *OFFLINE, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def rendered_dom(url: str, wait_ms: int = 10_000, size: str = "1600,1000") -> str:
    """The page's DOM after its scripts ran (up to `wait_ms` of virtual time) in a window of `size` pixels
    (a page that draws only what is in view, as MLflow's charts do, needs a tall one)."""
    result = chromium(f"--window-size={size}", f"--virtual-time-budget={wait_ms}", "--dump-dom", url, timeout=240)
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


class _Drawn(HTMLParser):
    """For each element id of interest: did an <svg> or <canvas> appear inside it?"""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self, ids: set[str]):
        super().__init__()
        self.ids, self.open, self.drawn = ids, [], {i: False for i in ids}

    def handle_starttag(self, tag, attrs):
        if tag in ("svg", "canvas"):
            for element_id in self.open:
                if element_id:
                    self.drawn[element_id] = True
        if tag not in self.VOID:
            element_id = dict(attrs).get("id")
            self.open.append(element_id if element_id in self.ids else None)

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.open:
            self.open.pop()


def drawn(dom: str, ids: set[str]) -> dict[str, bool]:
    """{id: whether a chart (svg or canvas) was drawn inside the element of that id}."""
    parser = _Drawn(ids)
    parser.feed(dom)
    return parser.drawn


def screenshot(url: str, path: str, size: str = "1600,1000", wait_ms: int = 30_000) -> None:
    """A PNG of the page after its scripts ran, as a user's browser window of `size` shows it."""
    result = chromium(f"--window-size={size}", f"--virtual-time-budget={wait_ms}", f"--screenshot={path}", url,
                      timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]


def rendered_until(url: str, ready, size: str = "1600,1000", budgets: tuple[int, ...] = (30_000, 90_000, 180_000)) -> str:
    """The DOM once `ready(dom)` holds, loading the page again with more virtual time while it does not
    (a single-page app fetches its data first; how long that takes depends on the machine)."""
    dom = ""
    for wait_ms in budgets:
        dom = rendered_dom(url, wait_ms=wait_ms, size=size)
        if ready(dom):
            break
    return dom
