"""Browser tier: the real ComfyUI frontend in headless Chromium against a ComfyUI server subprocess.

Runs with `python -m pytest tests` when a ComfyUI checkout (see tests/host/harness.py) and a Chromium are found;
otherwise every test here is skipped and the run ends with one line saying why. FADE_NO_BROWSER=1 skips the tier.
FADE_CHROMIUM=/path/to/chrome picks the browser. FADE_WRITE_THUMBNAILS=1 (re)writes the shipped workflows'
template-browser thumbnails (<workflow>.jpg next to the JSON); otherwise screenshots go to a temp directory.
"""
import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
HOST_DIR = HERE.parent / "host"
for path in (HERE, HOST_DIR):              # importlib import mode adds no paths
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import harness  # noqa: E402

TINY_MODEL = "wan21"
_OFF = {"", "0", "no", "off", "false", "none"}


def _skip_reason():
    if os.environ.get("FADE_NO_BROWSER", "").strip().lower() not in _OFF:
        return "browser tests skipped: FADE_NO_BROWSER is set"
    host = harness.unavailable_reason()
    if host:
        return host.replace("host tests skipped", "browser tests skipped")
    try:
        import websocket  # noqa: F401
    except ImportError:
        return "browser tests skipped: the websocket-client package is not installed"
    import cdp
    if cdp.find_chromium() is None:
        return ("browser tests skipped: no Chromium found (bash .ci/install_browser_deps.sh installs Debian's "
                "chromium; or set FADE_CHROMIUM)")
    return None


SKIP_REASON = _skip_reason()


def _is_browser_item(item):
    try:
        Path(str(item.path)).resolve().relative_to(HERE)
        return True
    except ValueError:
        return False


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_browser_item(item):
            item.add_marker(pytest.mark.browser)
            if SKIP_REASON:
                item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if SKIP_REASON:
        terminalreporter.write_line(SKIP_REASON)
    elif _THUMBNAILS:
        terminalreporter.write_line(f"browser screenshots: {_THUMBNAILS[0]}")


_THUMBNAILS = []


@dataclasses.dataclass
class Frontend:
    server: object          # comfy_server.ComfyServer
    page: object            # cdp.Page
    base: Path
    unet_name: str          # tiny Wan weights in <base>/models/diffusion_models
    screenshots: Path
    startup_errors: list
    timings: dict

    def frontend_errors(self, errors):
        """Errors that are not known frontend noise (see frontend.KNOWN_FRONTEND_NOISE)."""
        import frontend
        noise = [k.format(port=self.server.port) for k in frontend.KNOWN_FRONTEND_NOISE]
        return [e for e in errors if not any(n in e for n in noise)]


# Writes the tiny weights with tiny_models in a child process, so this pytest process never imports comfy (the
# host tier configures ComfyUI in-process with its own base directory).
_WEIGHTS = """
import sys
sys.path.insert(0, sys.argv[1])
import harness, tiny_models
harness.configure(sys.argv[2])
print(tiny_models.write_unet(sys.argv[3]))
"""


@pytest.fixture(scope="session")
def frontend_session(tmp_path_factory):
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    import cdp
    import comfy_server
    import frontend

    timings = {}
    t0 = time.perf_counter()
    comfy_root, _ = harness.find_comfyui()
    base = tmp_path_factory.mktemp("comfy_browser_base")
    shots = tmp_path_factory.mktemp("browser_screenshots")
    _THUMBNAILS[:] = [shots]
    comfy_server.prepare_base(base, harness.PACK_DIR_NAME, harness.TESTING_PACK_DIR, harness.TESTING_PACK_DIR_NAME)

    # Three things at once on two cores: weights, server start-up and browser start-up.
    weights = subprocess.Popen([sys.executable, "-c", _WEIGHTS, str(HOST_DIR), str(base), TINY_MODEL], cwd=base,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=cdp.die_with_parent)
    server = comfy_server.ComfyServer(comfy_root, base, log_path=base / "comfyui.log")
    browser = page = None
    try:
        server.start()
        timings["server_start"] = time.perf_counter() - t0
        failed = [line for line in server.log_text().splitlines() if "IMPORT FAILED" in line and "custom_nodes" in line]
        assert not failed, "custom node packs failed to import:\n" + "\n".join(failed) + "\n" + server.log_tail()
        browser = cdp.Browser(cdp.find_chromium())
        page = browser.page()
        frontend.wait_ready(page, server.url, frontend.FADE_NODE_TYPES)
        timings["frontend_ready"] = time.perf_counter() - t0
        out, err = weights.communicate(timeout=300)
        assert weights.returncode == 0, f"writing tiny weights failed:\n{err[-3000:]}"
        unet_name = out.strip().splitlines()[-1]
        timings["weights_ready"] = time.perf_counter() - t0
        page.pump(0.3)
        session = Frontend(server, page, base, unet_name, shots, list(page.errors), timings)
        page.errors.clear()
        yield session
    finally:
        if weights.poll() is None:
            weights.kill()
            weights.wait()
        if page is not None:
            page.close()
        if browser is not None:
            browser.close()
        server.stop()


@pytest.fixture
def fe(frontend_session):
    """The session's frontend, with the page's error list cleared for this test."""
    frontend_session.page.errors.clear()
    frontend_session.page.warnings.clear()
    return frontend_session
