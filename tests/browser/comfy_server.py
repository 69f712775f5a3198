"""ComfyUI as a headless subprocess server for the browser tier (the frontend needs real HTTP + websocket).

The base directory is private to the run: custom_nodes/ holds the pack (symlink fade_freeinit -> repo root), the
FADETEST_ stand-in pack, and a fixture pack whose only content is example workflows for the template browser;
models/ holds tiny synthetic weights.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import harness
from cdp import die_with_parent

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
FIXTURE_PACK = "fade_browser_fixtures"
# Input media for workflows that load a source clip or image, copied under the names they refer to.
INPUT_VIDEO = "fadetest_clip.mp4"
INPUT_IMAGE = "fadetest_image.png"
MEDIA_LOADERS = {"LoadVideo": INPUT_VIDEO, "LoadImage": INPUT_IMAGE}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def link(target, path):
    path = Path(path)
    if not path.is_symlink():
        os.symlink(target, path, target_is_directory=True)


def prepare_base(base, pack_dir_name, testing_pack_dir, testing_dir_name):
    """Lay out <base>/custom_nodes, <base>/user and <base>/models; returns <base>/models/diffusion_models."""
    base = Path(base)
    custom = base / "custom_nodes"
    custom.mkdir(parents=True, exist_ok=True)
    link(REPO_ROOT, custom / pack_dir_name)
    link(testing_pack_dir, custom / testing_dir_name)
    link(HERE / "fixture_pack", custom / FIXTURE_PACK)
    provide_model_placeholders(base, sorted((REPO_ROOT / "workflows").glob("*.json"))
                               + sorted((HERE / "fixture_pack" / "example_workflows").glob("*.json")))
    # A returning user's profile, so that the frontend starts quietly:
    user = base / "user" / "default"
    for folder in ("workflows", "subgraphs"):     # listing a missing userdata dir is a logged 404
        (user / folder).mkdir(parents=True, exist_ok=True)
    (user / "user.css").write_text("")
    (user / "comfy.templates.json").write_text("[]")
    (user / "comfy.settings.json").write_text(json.dumps({
        "Comfy.TutorialCompleted": True,                    # no "Get started with a template" dialog
        "Comfy.InstalledVersion": "1.27.10",
        # Stored explicitly: registering Comfy.Canvas.NavigationMode for a new user sets these two before they
        # are registered, and the frontend throws "reading 'id'" (settingStore onChange, frontend 1.27.10).
        "Comfy.Canvas.NavigationMode": "legacy",
        "Comfy.Canvas.LeftMouseClickBehavior": "panning",
        "Comfy.Canvas.MouseWheelScroll": "zoom",
        "Comfy.Workflow.ShowMissingModelsWarning": False,   # the real model names are swapped for tiny files
        # Screenshots: no minimap, no canvas stats or zoom menu, and full detail at any zoom.
        "Comfy.Minimap.Visible": False,
        "Comfy.Graph.CanvasInfo": False,
        "Comfy.Graph.CanvasMenu": False,
        "LiteGraph.Canvas.MinFontSizeForLOD": 0,
    }))
    write_input_media(base / "input")
    models = base / "models" / "diffusion_models"
    models.mkdir(parents=True, exist_ok=True)
    return models


def write_input_media(folder, size=64, frames=9):
    """A small moving gradient as an mp4 clip and a png still (ComfyUI already needs av, numpy and Pillow)."""
    import av
    import numpy as np
    from PIL import Image
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:size, 0:size]
    pictures = [np.stack([(x * 4 + 16 * i) % 256, (y * 4) % 256, np.full_like(x, 96 + 8 * i)], -1).astype(np.uint8)
                for i in range(frames)]
    Image.fromarray(pictures[0]).save(folder / INPUT_IMAGE)
    with av.open(str(folder / INPUT_VIDEO), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for picture in pictures:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode(None))


# Model loaders of the shipped workflows -> the models/ folder their first widget lists.
MODEL_LOADERS = {"UNETLoader": "diffusion_models", "CLIPLoader": "text_encoders", "VAELoader": "vae"}


def provide_model_placeholders(base, workflow_paths):
    """Empty files under the model names the workflows' loaders select, so that the frontend finds them in the
    loaders' lists (frontends since ~1.30 flag a node whose model file is missing). Never loaded: the browser
    tests queue the graphs with tiny weights and stand-in encoders."""
    for path in workflow_paths:
        for node in json.loads(Path(path).read_text()).get("nodes", []):
            folder = MODEL_LOADERS.get(node.get("type"))
            values = node.get("widgets_values") or []
            if folder and values and isinstance(values[0], str) and "/" not in values[0] and "\\" not in values[0]:
                target = Path(base) / "models" / folder / values[0]
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    target.write_bytes(b"")


def provide_input_media(base, workflow):
    """Put a small clip / still in <base>/input under every name the UI workflow's loaders refer to, so that the
    frontend's previews load and the prompt validates (users bring their own files)."""
    folder = Path(base) / "input"
    for node in workflow.get("nodes", []):
        source = MEDIA_LOADERS.get(node.get("type"))
        values = node.get("widgets_values") or []
        if source and values and isinstance(values[0], str) and "/" not in values[0] and "\\" not in values[0]:
            target = folder / values[0]
            if not target.exists():
                target.write_bytes((folder / source).read_bytes())


class ComfyServer:
    def __init__(self, comfy_root, base, log_path, port=None):
        self.comfy_root = Path(comfy_root)
        self.base = Path(base)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path)
        self.proc = None

    def start(self, timeout=90.0):
        env = dict(os.environ)
        # ComfyUI imports torchvision / torchaudio at start-up; CPU CI has neither (harness.standin_paths).
        standins = harness.standin_paths()
        if standins:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, standins + [env.get("PYTHONPATH")]))
        cmd = [sys.executable, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base), "--disable-auto-launch", "--dont-print-server",
               "--database-url", "sqlite:///:memory:", "--disable-api-nodes", "--log-stdout",
               "--preview-method", "none"]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.comfy_root, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode} while starting:\n{self.log_tail()}")
            try:
                if self.get("/system_stats") is not None:
                    return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"ComfyUI did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=4000):
        return self.log_text()[-n:]

    def request(self, method, path, body=None, timeout=30.0):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, method=method, data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw or b"null")
            except ValueError:
                return e.code, {"raw": raw.decode(errors="replace")[:2000]}

    def status(self, path):
        """HTTP status of a GET, body ignored (static files)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def get(self, path):
        status, body = self.request("GET", path)
        return body if status == 200 else None

    def queue(self, prompt, client_id="fade-browser-test"):
        """POST /prompt; returns (status, response) -- node_errors in the response on a 400."""
        return self.request("POST", "/prompt", {"prompt": prompt, "client_id": client_id})

    def wait_history(self, prompt_id, timeout=120.0):
        """The /history entry of a prompt once it has finished (success or error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = (self.get(f"/history/{prompt_id}") or {}).get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and \
                    entry["status"].get("status_str") in ("success", "error"):
                return entry
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()
