"""Headless Chromium (Debian's `chromium` package) for the tests that check what a user sees in a browser.

The browser runs with no network: a proxy that refuses every connection and a resolver that finds
no host, so a page that needs the internet fails here as it would offline. Loopback stays
reachable (a local `mlflow server`). Tests skip, saying why, where chromium is not installed;
.ci/run installs it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
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


def rendered_until(url: str, ready, size: str = "1600,1000", timeout_s: float = 180.0) -> str:
    """The page's DOM once `ready(dom)` holds, or as it is after `timeout_s` seconds of real time.

    A single-page app (the MLflow UI) fetches its data and draws its charts when it gets to them, so
    this polls the live DOM over the DevTools protocol instead of dumping it after a budget of virtual
    time: on a busy machine a virtual budget ran out before the charts' data came back (CI, 2 cores).
    """
    with DevTools(size) as browser:
        return browser.poll(url, ready, timeout_s)


class DevTools:
    """Headless Chromium driven over --remote-debugging-pipe: JSON messages ending in NUL, commands on
    the child's fd 3 and replies on its fd 4. Just enough of the protocol to open a page and read it."""

    def __init__(self, size: str):
        if CHROMIUM is None:
            pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
        self.width, self.height = (int(v) for v in size.split(","))
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        self._next_id, self._buffer = 0, b""

    def __enter__(self) -> "DevTools":
        to_child, self._commands = os.pipe()
        self._replies, from_child = os.pipe()

        def wire_pipes():  # in the child, before exec: its fds 3 and 4 are the protocol's pipe
            os.dup2(os.dup(to_child), 3)  # via a fresh fd: the pipe's own may already be 3 or 4
            os.dup2(os.dup(from_child), 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self._process = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", f"--user-data-dir={self._profile.name}", *OFFLINE,
             f"--window-size={self.width},{self.height}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes, close_fds=False)  # close_fds would close 3 and 4 after wire_pipes
        os.close(to_child)
        os.close(from_child)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._send("Browser.close")
        except OSError:
            pass
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._commands)
        os.close(self._replies)
        self._profile.cleanup()

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        return self._next_id

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout_s: float = 60.0) -> dict:
        """Send one command and return its result, skipping the events that arrive meanwhile."""
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + timeout_s
        while True:
            while b"\0" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                    raise TimeoutError(f"chromium did not answer {method} in {timeout_s:.0f} s")
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium exited while answering {method}")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == wanted:
                if "error" in reply:
                    raise RuntimeError(f"chromium: {method}: {reply['error']}")
                return reply["result"]

    def poll(self, url: str, ready, timeout_s: float) -> str:
        target = self.call("Target.createTarget", {"url": "about:blank"})
        session = self.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                         "deviceScaleFactor": 1, "mobile": False}, session)
        self.call("Page.navigate", {"url": url}, session)
        deadline, dom = time.monotonic() + timeout_s, ""
        while True:
            value = self.call("Runtime.evaluate", {"expression": "document.documentElement.outerHTML",
                                                   "returnByValue": True}, session)["result"].get("value")
            dom = value if isinstance(value, str) else dom
            if ready(dom) or time.monotonic() > deadline:
                return dom
            time.sleep(0.5)
