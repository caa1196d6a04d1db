"""A real headless Chromium, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`).

Why a pipe: the protocol then needs no websocket client and no driver package (playwright or
selenium would download a browser or a driver); messages are JSON, each ended by a NUL byte, read
by the browser from its fd 3 and written to its fd 4.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """$AAEXP_CHROMIUM, else the first of NAMES on PATH."""
    return os.environ.get("AAEXP_CHROMIUM") or next((p for p in map(shutil.which, NAMES) if p), None)


# What a page shows once loaded: every image (decoded size), every audio element (metadata loaded or
# an error), every table's text. Audio waits for its metadata, at most `ms` milliseconds.
INSPECT = """(async (ms) => {
  const audios = [...document.querySelectorAll('audio')];
  await Promise.race([
    Promise.all(audios.map(a => (a.readyState >= 1 || a.error) ? null : new Promise(done => {
      a.addEventListener('loadedmetadata', done, {once: true});
      a.addEventListener('error', done, {once: true});
    }))),
    new Promise(done => setTimeout(done, ms))]);
  return {
    images: [...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete, naturalWidth: i.naturalWidth})),
    audios: audios.map(a => ({src: a.getAttribute('src'), readyState: a.readyState, error: a.error ? a.error.code : null,
                              duration: a.duration})),
    tables: [...document.querySelectorAll('table')].map(t => ({id: t.id, rows: [...t.rows].map(r => [...r.cells].map(c => c.innerText))})),
  };
})(%d)"""


class Chromium:
    """One headless browser; `load(path)` opens a file and returns what INSPECT found; `screenshot(path)`."""

    def __init__(self, exe: str, profile: Path, timeout_s: float = 60.0):
        self.timeout_s = timeout_s
        cmd_r, cmd_w = os.pipe()      # we write commands, the browser reads them on fd 3
        out_r, out_w = os.pipe()      # the browser writes replies on fd 4

        def plumb():  # in the child, before exec: move the pipe ends to fds 3 and 4
            a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (cmd_r, out_w))
            os.dup2(a, 3)
            os.dup2(b, 4)

        profile.mkdir(parents=True, exist_ok=True)
        self.log = open(profile / "chromium.log", "wb")
        self.proc = subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--mute-audio",
                                      f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, close_fds=False, preexec_fn=plumb)
        os.close(cmd_r)
        os.close(out_w)
        self.writer = os.fdopen(cmd_w, "wb")
        self.replies: dict[int, dict] = {}
        self.events: list[dict] = []
        self.inbox: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, args=(out_r,), daemon=True).start()
        self.session = self._attach()

    def _read(self, fd: int) -> None:
        buf = b""
        with os.fdopen(fd, "rb") as f:
            while chunk := f.read1(1 << 16):
                buf += chunk
                *messages, buf = buf.split(b"\0")
                for m in messages:
                    self.inbox.put(json.loads(m))
        self.inbox.put(None)   # the browser closed the pipe

    def _pump(self, until) -> None:
        deadline = time.monotonic() + self.timeout_s
        while not until():
            try:
                msg = self.inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("Chromium did not answer in time") from None
            if msg is None:
                raise RuntimeError(f"Chromium exited (code {self.proc.poll()}); see {self.log.name}")
            if "id" in msg:
                self.replies[msg["id"]] = msg
            else:
                self.events.append(msg)

    def _send(self, method: str, params: dict | None, session: str | None) -> dict:
        self.next_id += 1
        i = self.next_id
        msg = {"id": i, "method": method, "params": params or {}, **({"sessionId": session} if session else {})}
        self.writer.write(json.dumps(msg).encode() + b"\0")
        self.writer.flush()
        self._pump(lambda: i in self.replies)
        reply = self.replies.pop(i)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def call(self, method: str, params: dict | None = None) -> dict:
        """A command to the page."""
        return self._send(method, params, self.session)

    def _attach(self) -> str:
        target = self._send("Target.createTarget", {"url": "about:blank"}, None)["targetId"]
        session = self._send("Target.attachToTarget", {"targetId": target, "flatten": True}, None)["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self._send(f"{domain}.enable", None, session)
        self._send("Emulation.setDeviceMetricsOverride", {"width": 1300, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
                   session)
        return session

    def load(self, path: Path, media_wait_ms: int = 15000) -> dict:
        """Open `path` (file://), wait for its load event, then INSPECT it; adds `failed`: requests that failed."""
        self.events.clear()
        self.call("Page.navigate", {"url": path.resolve().as_uri()})
        self._pump(lambda: any(e["method"] == "Page.loadEventFired" for e in self.events))
        found = self.call("Runtime.evaluate", {"expression": INSPECT % media_wait_ms, "awaitPromise": True,
                                               "returnByValue": True})["result"]["value"]
        urls = {e["params"]["requestId"]: e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"}
        found["failed"] = [(urls.get(e["params"]["requestId"]), e["params"].get("errorText")) for e in self.events
                           if e["method"] == "Network.loadingFailed"]
        return found

    def screenshot(self, path: Path) -> None:
        """The whole page as PNG."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        data = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self._send("Browser.close", None, None)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
