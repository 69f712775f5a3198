"""A minimal Chrome DevTools Protocol client over websocket-client (already a ComfyUI test dependency).

Just what the browser tier needs: launch headless Chromium, open a page, evaluate JavaScript (awaiting promises),
collect console errors and uncaught exceptions, and take screenshots. Playwright would do the same, but its browser
download needs the network and its Python package is one more dependency; the system Chromium is enough.
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websocket

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium():
    """Path of a Chromium/Chrome executable (env FADE_CHROMIUM first), or None."""
    explicit = os.environ.get("FADE_CHROMIUM")
    if explicit:
        return explicit if os.path.isfile(explicit) and os.access(explicit, os.X_OK) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def die_with_parent():
    """preexec_fn: on Linux, have the child killed when the test process dies (a killed CI job leaves no
    Chromium or ComfyUI behind). Elsewhere a no-op."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class CDPError(RuntimeError):
    pass


class JSError(AssertionError):
    """A page-side exception raised while evaluating test JavaScript."""


class Browser:
    """A headless Chromium process with its own throw-away profile."""

    def __init__(self, executable, width=1600, height=1000, timeout=30.0):
        self.profile = tempfile.mkdtemp(prefix="fade_chromium_")
        args = [
            executable, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
            "--remote-allow-origins=*", f"--window-size={width},{height}", "--force-device-scale-factor=1",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-gpu",
            "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
            "--disable-renderer-backgrounding", "--disable-background-timer-throttling", "--mute-audio",
            "--hide-scrollbars", "about:blank",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")      # Chromium refuses to run its sandbox as root (CI containers)
        self.log_path = os.path.join(self.profile, "chromium.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
        self.port = self._wait_for_port(timeout)

    def _wait_for_port(self, timeout):
        # Chromium writes the port it picked to <profile>/DevToolsActivePort once the endpoint listens.
        marker = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CDPError(f"chromium exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with open(marker) as f:
                    first = f.readline().strip()
                if first:
                    return int(first)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise CDPError(f"chromium did not open its DevTools port within {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def page(self):
        """The first page target (the about:blank the browser opened with)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.loads(r.read())
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            raise CDPError(f"no page target in {targets}")
        return Page(pages[0]["webSocketDebuggerUrl"])

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One page target: synchronous command/response; console errors and warnings are collected on the way."""

    def __init__(self, ws_url, timeout=60.0):
        self.ws = websocket.create_connection(ws_url, timeout=timeout, suppress_origin=True)
        self._next_id = 0
        self.errors = []            # console.error text, uncaught exceptions, failed loads (see _record)
        self.warnings = []          # console.warn text
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method, params=None, timeout=60.0):
        self._next_id += 1
        msg_id = self._next_id
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                raw = self.ws.recv()
            except websocket.WebSocketTimeoutException:
                raise CDPError(f"{method}: no answer within {timeout:.0f}s") from None
            msg = json.loads(raw)
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._record(msg)

    def _record(self, msg):
        method, p = msg["method"], msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            # Where it was logged from: tells the pack's own code from the frontend's.
            frames = [f"{f.get('functionName') or '?'}@{f.get('url', '').rsplit('/', 1)[-1]}:{f.get('lineNumber')}"
                      for f in p.get("stackTrace", {}).get("callFrames", [])[:4]]
            self.errors.append(f"console.{p['type']}: {text}" + (f" (at {' < '.join(frames)})" if frames else ""))
        elif method == "Runtime.consoleAPICalled" and p.get("type") == "warning":
            self.warnings.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = d.get("exception", {}).get("description") or d.get("text", "")
            self.errors.append(f"uncaught: {text}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.errors.append(f"log.{e.get('source')}: {e.get('text')} {e.get('url', '')}".rstrip())

    def pump(self, seconds=0.0):
        """Read pending events for up to `seconds` (console messages arrive asynchronously)."""
        deadline = time.monotonic() + seconds
        while True:
            self.ws.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                return
            if "method" in msg:
                self._record(msg)
            if time.monotonic() >= deadline:
                return

    def evaluate(self, expression, timeout=60.0):
        """Value of a JS expression (awaited if it is a promise), returned by value (JSON)."""
        result = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True, "timeout": int(timeout * 1000)},
                           timeout=timeout + 5)
        if "exceptionDetails" in result:
            d = result["exceptionDetails"]
            raise JSError(d.get("exception", {}).get("description") or d.get("text") or json.dumps(d))
        return result.get("result", {}).get("value")

    def call(self, function_source, *args, timeout=60.0):
        """Call `(async) function_source` with JSON-serialisable args."""
        return self.evaluate(f"({function_source})(...{json.dumps(list(args))})", timeout=timeout)

    def wait_for(self, expression, timeout=60.0, interval=0.1, what=None):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression, timeout=max(1.0, deadline - time.monotonic()))
            except JSError as e:
                last = e
            if last and not isinstance(last, Exception):
                return last
            time.sleep(interval)
        raise CDPError(f"timed out after {timeout:.0f}s waiting for {what or expression} (last: {last})")

    def navigate(self, url, timeout=60.0):
        self.send("Page.navigate", {"url": url}, timeout=timeout)

    def screenshot(self, path, clip=None, quality=85, scale=1.0):
        """JPEG of the viewport (or of clip = {x, y, width, height} in CSS pixels), resized by `scale`."""
        params = {"format": "jpeg", "quality": quality}
        if clip or scale != 1.0:
            clip = clip or self.evaluate("({x: 0, y: 0, width: innerWidth, height: innerHeight})")
            params["clip"] = {k: clip[k] for k in ("x", "y", "width", "height")} | {"scale": scale}
        data = self.send("Page.captureScreenshot", params)["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass

