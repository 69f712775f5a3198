"""In-process ComfyUI host for the pack's host tests.

Two levels, both idempotent and process-wide (ComfyUI keeps global state):
  configure()  sys.path + comfy.cli_args (CPU, temp base dir). Enough for
               comfy.* imports, tiny models and direct sampling.
  bootstrap()  configure() + load every node (core + our pack + the FADETEST_
               pack) through ComfyUI's own custom-node loader, the way main.py
               does, and install main.py's progress hook on a stub server.
Then: run_prompt (API prompt -> PromptResult, raising ComfyUI's own error
text), call_node (one node's execute, as the executor calls it), pack_module
(our pack's modules under the name ComfyUI gave them), swap_standins /
write_input_video (shipped workflows on tiny weights).
Nothing here imports comfy at module import time: pytest imports this file at
collection, before the base directory is known.
"""
import asyncio
import atexit
import copy
import dataclasses
import importlib
import importlib.util
import inspect
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

HOST_DIR = Path(__file__).resolve().parent
REPO_ROOT = HOST_DIR.parents[1]
STUBS_DIR = REPO_ROOT / "tests" / "stubs"
TESTING_PACK_DIR = HOST_DIR / "testing_pack"

# Directory names under <base>/custom_nodes; ComfyUI derives module names from them.
PACK_DIR_NAME = "fade_freeinit"
TESTING_PACK_DIR_NAME = "fadetest_nodes"

ENABLE_HINT = "set COMFYUI_PATH to a ComfyUI checkout to run them"
_NONE_VALUES = {"", "0", "none", "off", "false", "no"}


class HostUnavailable(RuntimeError):
    """No ComfyUI checkout to test against (tests skip with this message)."""


class PackImportError(RuntimeError):
    """Our pack (or the FADETEST_ pack) failed inside ComfyUI's loader."""


class PromptValidationError(AssertionError):
    def __init__(self, message, error=None, node_errors=None):
        super().__init__(message)
        self.error = error
        self.node_errors = node_errors or {}


class PromptExecutionError(RuntimeError):
    """A prompt failed while executing; carries ComfyUI's execution_error payload."""

    def __init__(self, message, result):
        super().__init__(message)
        self.result = result
        err = result.error or {}
        self.node_id = err.get("node_id")
        self.node_type = err.get("node_type")
        self.exception_type = err.get("exception_type")
        self.exception_message = err.get("exception_message")
        self.traceback = "".join(err.get("traceback") or [])


class PromptInterrupted(PromptExecutionError):
    pass


# --------------------------------------------------------------------------- discovery

def is_comfy_root(path):
    p = Path(path)
    return (p / "main.py").is_file() and (p / "comfy").is_dir() and (p / "nodes.py").is_file()


def find_comfyui():
    """(Path | None, how) -- COMFYUI_PATH, else the ComfyUI we are installed in, else ~/ComfyUI.

    COMFYUI_PATH set to an empty/none value or to a path that is not a ComfyUI
    checkout, or FADE_NO_HOST=1, means "explicitly none": no fallback.
    """
    if os.environ.get("FADE_NO_HOST", "").strip().lower() not in _NONE_VALUES:
        return None, "FADE_NO_HOST is set"
    env = os.environ.get("COMFYUI_PATH")
    if env is not None:
        if env.strip().lower() in _NONE_VALUES:
            return None, f"COMFYUI_PATH={env!r} disables them"
        # Several hosts (os.pathsep-separated): one process can hold only one ComfyUI, so this process tests
        # the first; tests/run_all.py runs one process per host.
        first = env.split(os.pathsep)[0]
        p = Path(first).expanduser()
        if is_comfy_root(p):
            return p.resolve(), "COMFYUI_PATH"
        return None, f"COMFYUI_PATH={first} is not a ComfyUI checkout (no main.py + comfy/ + nodes.py)"
    parent = REPO_ROOT.parent
    if parent.name == "custom_nodes" and is_comfy_root(parent.parent):
        return parent.parent.resolve(), "installed in custom_nodes"
    home = Path.home() / "ComfyUI"
    if is_comfy_root(home):
        return home.resolve(), "~/ComfyUI"
    return None, "no ComfyUI found (COMFYUI_PATH unset, not installed under custom_nodes/, no ~/ComfyUI)"


def host_version(root):
    """ComfyUI's version string from comfyui_version.py ('unknown' when it has none)."""
    path = Path(root) / "comfyui_version.py"
    match = re.search(r'__version__\s*=\s*"([^"]+)"', path.read_text() if path.is_file() else "")
    return match.group(1) if match else "unknown"


def version_tuple(root=None):
    """The host's version as a tuple of ints, e.g. (0, 33, 0), for tests whose expectations differ by host."""
    root = root or (_HOST.comfy_root if _HOST is not None else find_comfyui()[0])
    numbers = re.findall(r"\d+", host_version(root)) if root is not None else []
    return tuple(int(x) for x in numbers[:3]) if numbers else (0, 0, 0)


def unavailable_reason():
    """None if a ComfyUI is available, else the one-line skip message."""
    root, how = find_comfyui()
    if root is not None:
        return None
    return f"host tests skipped: {how}; {ENABLE_HINT}"


# --------------------------------------------------------------------------- stub server

class StubServer:
    """The attributes of server.PromptServer that execution.py, the progress
    handlers and a few core nodes touch; records every event it is sent."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata = {}
        self.events = []          # (event, data) in order
        self.listeners = []       # callables(event, data), e.g. to interrupt

    def send_sync(self, event, data, sid=None):
        self.events.append((event, data))
        for fn in list(self.listeners):
            fn(event, data)

    def send_progress_text(self, text, node_id, sid=None):
        self.send_sync("progress_text", {"text": text, "node_id": node_id}, sid)

    def queue_updated(self):
        pass


@dataclasses.dataclass
class Host:
    comfy_root: Path
    base_dir: Path
    found_by: str
    server: StubServer = None
    loaded: bool = False
    pack_module_name: str = None          # sys.modules key ComfyUI gave our pack
    testing_module_name: str = None
    pack_node_ids: tuple = ()
    testing_node_ids: tuple = ()
    load_log: list = dataclasses.field(default_factory=list)   # WARNING+ records during node loading
    load_seconds: float = 0.0
    load_error: Exception = None

    @property
    def pack(self):
        return sys.modules[self.pack_module_name]

    @property
    def testing_pack(self):
        return sys.modules[self.testing_module_name]

    @property
    def models_dir(self):
        return self.base_dir / "models"


_HOST = None


# --------------------------------------------------------------------------- import stand-ins

# Packages ComfyUI imports at start-up that have no wheel for the CPU torch used here: name -> stand-in root.
STANDIN_ROOTS = {"torchvision": STUBS_DIR / "vision", "torchaudio": STUBS_DIR / "audio"}


def standin_paths():
    """sys.path entries that supply import stand-ins for the packages that cannot be imported for real (the
    shared helper module first); empty when all are installed. Also used for server subprocesses (PYTHONPATH).
    Decided once per process: after configure() the stand-ins themselves import fine."""
    global _STANDIN_PATHS
    if _STANDIN_PATHS is not None:
        return list(_STANDIN_PATHS)
    missing = []
    for name, root in STANDIN_ROOTS.items():
        try:
            importlib.import_module(name)
        except Exception:   # not installed, or installed for another torch (fails to load)
            for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
                del sys.modules[key]
            missing.append(str(root))
    _STANDIN_PATHS = [str(STUBS_DIR / "common")] + missing if missing else []
    return list(_STANDIN_PATHS)


_STANDIN_PATHS = None


# --------------------------------------------------------------------------- level 1

def configure(base_dir=None):
    """Make comfy.* importable on CPU with a private base directory. Idempotent.

    base_dir only matters on the first call (folder_paths reads it at import).
    """
    global _HOST
    if _HOST is not None:
        return _HOST
    root, how = find_comfyui()
    if root is None:
        raise HostUnavailable(f"{how}; {ENABLE_HINT}")

    # ComfyUI's root must win over cwd: `python -m pytest` puts the repo root
    # ('' / cwd) on sys.path and the repo has its own nodes/ package.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != root]
    sys.path.insert(0, str(root))
    shadow = sys.modules.get("nodes")
    if shadow is not None and Path(getattr(shadow, "__file__", "") or "").resolve() != root / "nodes.py":
        raise PackImportError(
            f"sys.modules['nodes'] is {getattr(shadow, '__file__', shadow)!r}, not ComfyUI's nodes.py: "
            "something imported the pack's nodes/ package as top-level 'nodes' (repo root on sys.path). "
            "Import pack modules through a package name instead.")

    for index, path in enumerate(standin_paths()):
        sys.path.insert(1 + index, path)

    if base_dir:
        base = Path(base_dir)
        base.mkdir(parents=True, exist_ok=True)
    else:
        base = Path(tempfile.mkdtemp(prefix="fadetest_comfy_"))
        # rmtree unlinks the custom_nodes symlinks without following them.
        atexit.register(shutil.rmtree, base, ignore_errors=True)

    if "folder_paths" in sys.modules or "comfy.model_management" in sys.modules:
        raise RuntimeError("configure() must run before folder_paths / comfy.model_management are imported")
    from comfy.cli_args import args   # parses [] (argument parsing is off unless enabled)
    args.cpu = True
    args.base_directory = str(base)
    args.disable_api_nodes = True
    args.disable_auto_launch = True
    import folder_paths  # noqa: F401  (fixes the base directory now)
    import comfy.model_management  # noqa: F401  (picks the CPU device now)
    # nodes.py:22 puts <root>/comfy first on sys.path, after which `import utils`
    # finds comfy/utils.py instead of the utils/ package (server.py needs
    # utils.install_util). main.py imports utils.* before nodes; so do we.
    import utils.extra_config  # noqa: F401
    import utils.install_util  # noqa: F401

    _HOST = Host(comfy_root=root, base_dir=base, found_by=how)
    return _HOST


def host():
    """The configured Host (raises HostUnavailable when there is no ComfyUI)."""
    return _HOST if _HOST is not None else configure()


# --------------------------------------------------------------------------- level 2

class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.records = []

    def emit(self, record):
        try:
            self.records.append(record.getMessage())
        except Exception:   # a bad log call must not break loading
            self.records.append(str(record.msg))


def _link(target, link):
    link = Path(link)
    if link.is_symlink() or link.exists():
        if link.is_symlink() and Path(os.readlink(link)) == Path(target):
            return
        raise RuntimeError(f"{link} already exists and is not a link to {target}")
    os.symlink(target, link, target_is_directory=True)


def bootstrap(base_dir=None):
    """configure() + load all nodes through nodes.init_extra_nodes. Idempotent.

    Raises PackImportError (never skips) when our pack or the FADETEST_ pack
    did not load.
    """
    h = configure(base_dir)
    if h.loaded:
        return h
    if h.load_error is not None:      # node loading is not repeatable in one process
        raise h.load_error
    try:
        return _bootstrap(h)
    except Exception as e:
        h.load_error = e
        raise


def _bootstrap(h):
    import folder_paths
    custom_dir = Path(folder_paths.get_folder_paths("custom_nodes")[0])
    custom_dir.mkdir(parents=True, exist_ok=True)
    _link(REPO_ROOT, custom_dir / PACK_DIR_NAME)
    _link(TESTING_PACK_DIR, custom_dir / TESTING_PACK_DIR_NAME)
    (h.models_dir / "diffusion_models").mkdir(parents=True, exist_ok=True)

    import nodes
    import comfy.utils
    import hook_breaker_ac10a0
    if Path(nodes.__file__).resolve() != h.comfy_root / "nodes.py":
        raise PackImportError(f"'import nodes' gave {nodes.__file__}, not ComfyUI's nodes.py")

    collect = _Collect()
    logging.getLogger().addHandler(collect)
    # ComfyUI only logs custom-node failures; record load_custom_node's verdict
    # per path instead (init_external_custom_nodes looks it up as a module global).
    verdicts = {}
    real_load = nodes.load_custom_node

    async def recording_load(module_path, *a, **kw):
        first = len(collect.records)
        ok = await real_load(module_path, *a, **kw)
        verdicts[os.path.abspath(module_path)] = (ok, collect.records[first:])
        return ok
    nodes.load_custom_node = recording_load
    t0 = time.perf_counter()
    try:
        hook_breaker_ac10a0.save_functions()        # as main.py: undo custom-node monkeypatching
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        hook_breaker_ac10a0.restore_functions()
    finally:
        nodes.load_custom_node = real_load
        logging.getLogger().removeHandler(collect)
    h.load_seconds = time.perf_counter() - t0
    h.load_log = collect.records

    # load_custom_node keys sys.modules by the full path with '.' -> '_x_' (nodes.py load_custom_node).
    pack_path = os.path.join(str(custom_dir), PACK_DIR_NAME)
    test_path = os.path.join(str(custom_dir), TESTING_PACK_DIR_NAME)
    h.pack_module_name = pack_path.replace(".", "_x_")
    h.testing_module_name = test_path.replace(".", "_x_")
    for path, modname, what in ((pack_path, h.pack_module_name, "the FADE/FreeInit pack"),
                                (test_path, h.testing_module_name, "the FADETEST_ testing pack")):
        ok, logged = verdicts.get(os.path.abspath(path), (None, []))
        if ok is not True:
            raise PackImportError(f"ComfyUI failed to load {what} from {path} (load_custom_node -> {ok}):\n"
                                  + "\n".join(logged or ["(nothing logged)"]) + _entrypoint_traceback(modname))

    def ids_from(dirname):
        rel = f"custom_nodes.{dirname}"
        return tuple(sorted(k for k, c in nodes.NODE_CLASS_MAPPINGS.items()
                            if getattr(c, "RELATIVE_PYTHON_MODULE", None) == rel))
    h.pack_node_ids = ids_from(PACK_DIR_NAME)
    h.testing_node_ids = ids_from(TESTING_PACK_DIR_NAME)
    if not h.testing_node_ids:
        raise PackImportError("FADETEST_ pack loaded but registered no nodes:\n" + "\n".join(h.load_log))

    h.server = StubServer()
    _install_stub_server(h.server)
    _install_progress_hook(h.server)
    # v0.33 throttles progress updates to one per 100 ms; tests count every step, so no minimum interval.
    if hasattr(comfy.utils, "PROGRESS_THROTTLE_MIN_INTERVAL"):
        comfy.utils.PROGRESS_THROTTLE_MIN_INTERVAL = 0.0
        comfy.utils.PROGRESS_THROTTLE_MIN_PERCENT = 0.0
    if os.environ.get("FADETEST_TQDM", "") in ("", "0"):
        comfy.utils.set_progress_bar_enabled(False)   # quiet tqdm; the hook still fires
    h.loaded = True
    return h


def _entrypoint_traceback(modname):
    """ComfyUI logs only str(e) when comfy_entrypoint fails; call it again for the traceback."""
    import traceback
    module = sys.modules.get(modname)
    entry = getattr(module, "comfy_entrypoint", None)
    if entry is None:
        return ""

    async def call():
        ext = entry()
        ext = await ext if inspect.isawaitable(ext) else ext
        return await ext.get_node_list()
    try:
        asyncio.run(call())
    except Exception:
        return "\ncomfy_entrypoint() again, for the traceback:\n" + traceback.format_exc()
    return ""


def _install_stub_server(server):
    # Core nodes reach the server via PromptServer.instance (nodes_images.py GetImageSize).
    import server as comfy_server
    if getattr(comfy_server.PromptServer, "instance", None) is None:
        comfy_server.PromptServer.instance = server


def _install_progress_hook(server):
    """main.py hijack_progress: progress events + interruption checks on every update."""
    import comfy.model_management
    import comfy.utils
    from comfy_execution.progress import get_progress_state
    from comfy_execution.utils import get_executing_context

    def hook(value, total, preview_image, prompt_id=None, node_id=None):
        ctx = get_executing_context()
        if prompt_id is None and ctx is not None:
            prompt_id = ctx.prompt_id
        if node_id is None and ctx is not None:
            node_id = ctx.node_id
        comfy.model_management.throw_exception_if_processing_interrupted()
        if prompt_id is None:
            prompt_id = server.last_prompt_id
        if node_id is None:
            node_id = server.last_node_id
        get_progress_state().update_progress(node_id, value, total, preview_image)
        server.send_sync("progress", {"value": value, "max": total, "prompt_id": prompt_id, "node": node_id},
                         server.client_id)

    comfy.utils.set_progress_bar_global_hook(hook)


# --------------------------------------------------------------------------- helpers

def pack_module(name=""):
    """A (sub)module of our pack as ComfyUI loaded it, e.g. pack_module('nodes.algo.spectral').

    The pack's sys.modules name is its custom_nodes path, so plain
    `import fade_freeinit.x` would load a second, unrelated copy.
    """
    h = bootstrap()
    if name.startswith(PACK_DIR_NAME + ".") or name == PACK_DIR_NAME:
        name = name[len(PACK_DIR_NAME):].lstrip(".")
    full = h.pack_module_name + ("." + name if name else "")
    return sys.modules.get(full) or importlib.import_module(full)


def node_class(node_id):
    import nodes
    bootstrap()
    try:
        return nodes.NODE_CLASS_MAPPINGS[node_id]
    except KeyError:
        raise KeyError(f"node {node_id!r} is not registered") from None


@dataclasses.dataclass
class NodeResult:
    values: tuple         # the node's outputs, in socket order
    ui: dict = None       # UI payload, if any

    def __getitem__(self, i):
        return self.values[i]

    def __len__(self):
        return len(self.values)


def call_node(node, inference_mode=True, **inputs):
    """Run one node's execute directly, as execution.py would (V3: locked class clone).

    `node` is a node id or class. Returns NodeResult(values, ui). Runs under
    torch.inference_mode() by default, like the executor.
    """
    import torch
    from comfy_api.internal import _ComfyNodeInternal, make_locked_method_func
    cls = node_class(node) if isinstance(node, str) else node
    if isinstance(cls, type) and issubclass(cls, _ComfyNodeInternal):
        cls.VALIDATE_CLASS()
        clone = cls.PREPARE_CLASS_CLONE({})
        fn = make_locked_method_func(cls, cls.FUNCTION, clone)
    else:
        fn = getattr(cls(), cls.FUNCTION)
    with torch.inference_mode(inference_mode):
        out = fn(**inputs)
        if inspect.isawaitable(out):
            out = asyncio.run(out)
    if hasattr(out, "args") and hasattr(out, "ui"):          # V3 NodeOutput
        ui = out.ui.as_dict() if hasattr(out.ui, "as_dict") else out.ui
        return NodeResult(tuple(out.args), ui)
    if isinstance(out, dict):                                 # V1 {"ui":..., "result":...}
        return NodeResult(tuple(out.get("result", ())), out.get("ui"))
    return NodeResult(tuple(out), None)


class PromptResult(dict):
    """History outputs {node_id: ui dict} plus what the run left behind."""

    def __init__(self, outputs, *, prompt_id, success, status_messages, events, executor, elapsed):
        super().__init__(outputs)
        self.prompt_id = prompt_id
        self.success = success
        self.status_messages = status_messages
        self.events = events
        self.executor = executor
        self.elapsed = elapsed
        self.error = next((d for e, d in status_messages if e == "execution_error"), None)
        self.interrupted = any(e == "execution_interrupted" for e, _ in status_messages)

    @property
    def event_types(self):
        return [e for e, _ in self.events]

    def outputs_of(self, node_id):
        """Python output values of any executed node (from the executor's cache)."""
        cached = self.executor.caches.outputs.get(str(node_id))
        if inspect.isawaitable(cached):                 # v0.33: the cache's get is a coroutine
            cached = asyncio.run(cached)
        if cached is None:
            raise KeyError(f"node {node_id!r} has no cached outputs (not executed, or evicted)")
        data = getattr(cached, "outputs", cached)     # newer ComfyUI wraps outputs in a CacheEntry
        return tuple(v[0] if isinstance(v, list) and len(v) == 1 else v for v in data)

    def output(self, node_id, index=0):
        return self.outputs_of(node_id)[index]

    def progress(self, node_id=None):
        return [d for e, d in self.events if e == "progress" and (node_id is None or d.get("node") == str(node_id))]


def new_executor():
    import execution
    h = bootstrap()
    kwargs = {}
    if "cache_args" in inspect.signature(execution.PromptExecutor.__init__).parameters:
        kwargs["cache_args"] = {"lru": 0, "ram": 0, "ram_inactive": 0}   # v0.8+: main.py's keys, no RAM headroom
    return execution.PromptExecutor(h.server, cache_type=execution.CacheType.CLASSIC, **kwargs)


def validate(prompt, prompt_id=None):
    """ComfyUI's validate_prompt; returns the list of output node ids or raises PromptValidationError."""
    import execution
    bootstrap()
    prompt_id = prompt_id or str(uuid.uuid4())
    n = len(inspect.signature(execution.validate_prompt).parameters)
    args = (prompt_id, prompt, None) if n >= 3 else (prompt,)
    ok, error, outputs, node_errors = asyncio.run(execution.validate_prompt(*args))
    if not ok or node_errors:
        lines = [f"prompt failed validation: {error}"]
        for nid, ne in (node_errors or {}).items():
            for e in ne.get("errors", []):
                lines.append(f"  node {nid} ({ne.get('class_type')}): {e.get('message')}: {e.get('details')}")
        raise PromptValidationError("\n".join(lines), error, node_errors)
    return outputs


def run_prompt(prompt, *, check=True, executor=None, outputs=None, client_id="fadetest", extra_data=None,
               on_event=None, interrupt_after_progress=None):
    """Validate and execute an API-format prompt in-process, like the server's prompt worker.

    Returns PromptResult (dict of history outputs). With check=True (default)
    raises PromptValidationError / PromptExecutionError / PromptInterrupted
    carrying ComfyUI's own error text. `executor` reuses a PromptExecutor (and
    its cache) across runs; `outputs` restricts which output nodes run;
    `on_event(event, data)` sees every server event; `interrupt_after_progress=N`
    requests an interrupt after the N-th progress event (checked by ComfyUI at
    the next progress update or node boundary).
    """
    import comfy.model_management
    h = bootstrap()
    prompt = copy.deepcopy(prompt)
    prompt_id = str(uuid.uuid4())
    execute_outputs = validate(prompt, prompt_id)
    if outputs is not None:
        execute_outputs = [str(o) for o in outputs]
    ex = executor or new_executor()
    server = h.server
    events_start = len(server.events)
    listeners = []
    if on_event is not None:
        listeners.append(on_event)
    if interrupt_after_progress is not None:
        seen = [0]

        def _interrupt(event, data):
            if event == "progress":
                seen[0] += 1
                if seen[0] == interrupt_after_progress:
                    comfy.model_management.interrupt_current_processing(True)
        listeners.append(_interrupt)
    server.listeners.extend(listeners)
    data = dict(extra_data or {})
    if client_id is not None:
        data.setdefault("client_id", client_id)
    server.last_prompt_id = prompt_id
    t0 = time.perf_counter()
    try:
        ex.execute(prompt, prompt_id, data, execute_outputs)
    finally:
        for fn in listeners:
            server.listeners.remove(fn)
        comfy.model_management.interrupt_current_processing(False)
        if client_id is not None:   # what the prompt worker sends when a prompt ends
            server.send_sync("executing", {"node": None, "prompt_id": prompt_id}, client_id)
    result = PromptResult(ex.history_result.get("outputs", {}), prompt_id=prompt_id, success=ex.success,
                          status_messages=list(ex.status_messages), events=server.events[events_start:],
                          executor=ex, elapsed=time.perf_counter() - t0)
    if check and (result.interrupted or not result.success or result.error is not None):
        if result.interrupted:
            raise PromptInterrupted("prompt was interrupted", result)
        err = result.error or {}
        raise PromptExecutionError(
            f"node {err.get('node_id')} ({err.get('node_type')}) raised {err.get('exception_type')}: "
            f"{err.get('exception_message')}\n" + "".join(err.get("traceback") or []), result)
    return result


# --------------------------------------------------------------------------- workflow stand-ins

def testing_pack_file(stem):
    """A file of the FADETEST_ pack loaded standalone (fadetest_cond / fadetest_vae);
    they import comfy lazily, so this works before bootstrap()."""
    name = f"fadetest_standalone_{stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTING_PACK_DIR / f"{stem}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def swap_standins(prompt, family="wan21", vae=True, seed=0, unet_name=None):
    """Rewrite an API-format prompt to run on tiny weights.

    CLIPTextEncode -> FADETEST_TextConditioning (same text, seeded from it),
    CLIPLoader / DualCLIPLoader nodes dropped, VAELoader -> FADETEST_TinyVAE
    (when vae=True; Wan families only), UNETLoader -> unet_name (when given,
    e.g. tiny_models.write_unet(family)). `family` is a tiny_models variant
    name. Returns a new dict.
    """
    out = copy.deepcopy(prompt)
    encoders = {"CLIPLoader", "DualCLIPLoader", "TripleCLIPLoader"}
    vae_families = testing_pack_file("fadetest_vae").FAMILY_TO_KIND
    meta = lambda node: {"_meta": node["_meta"]} if "_meta" in node else {}   # noqa: E731
    for nid, node in list(out.items()):
        ct = node.get("class_type")
        if ct == "CLIPTextEncode":
            text = node["inputs"].get("text", "")
            if isinstance(text, list):
                raise ValueError(f"node {nid}: CLIPTextEncode text is linked; stand-in needs a literal")
            out[nid] = {"class_type": "FADETEST_TextConditioning",
                        "inputs": {"family": family, "text": text, "seed": seed}, **meta(node)}
        elif ct == "VAELoader" and vae:
            if family not in vae_families:
                raise ValueError(f"no tiny VAE stand-in for {family!r} (have {sorted(vae_families)})")
            out[nid] = {"class_type": "FADETEST_TinyVAE", "inputs": {"kind": family, "seed": seed}, **meta(node)}
        elif ct == "UNETLoader" and unet_name is not None:
            node["inputs"].update(unet_name=unet_name, weight_dtype="default")
    for nid in [n for n, node in out.items() if node.get("class_type") in encoders]:
        users = [u for u, node in out.items() for v in node.get("inputs", {}).values()
                 if isinstance(v, list) and len(v) == 2 and str(v[0]) == str(nid)]
        if users:
            raise ValueError(f"{out[nid]['class_type']} node {nid} still feeds nodes {users}; "
                             "only CLIPTextEncode can be swapped for the stand-in")
        del out[nid]
    return out


def write_input_video(filename="fadetest_input.mp4", frames=9, height=64, width=64, fps=16, seed=0):
    """A small random-but-smooth H.264 clip in ComfyUI's input/ dir, written by
    ComfyUI's own VideoFromComponents (what SaveVideo uses); returns the name for LoadVideo."""
    import fractions

    import folder_paths
    import torch
    from comfy_api.latest._input_impl import VideoFromComponents
    from comfy_api.latest._util import VideoComponents
    configure()
    path = Path(folder_paths.get_input_directory()) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        gen = torch.Generator().manual_seed(int(seed))
        coarse = torch.rand((1, 3, max(2, frames // 4), 4, 4), generator=gen)   # smooth: codecs keep it
        clip = torch.nn.functional.interpolate(coarse, size=(frames, height, width), mode="trilinear")
        images = clip[0].permute(1, 2, 3, 0).contiguous()                     # [T, H, W, 3] in [0, 1]
        VideoFromComponents(VideoComponents(images=images, frame_rate=fractions.Fraction(fps))).save_to(str(path))
    return filename


def set_inputs(prompt, class_type, **inputs):
    """Set literal inputs on every node of class_type (e.g. shrink sizes/steps). Returns the count."""
    n = 0
    for node in prompt.values():
        if node.get("class_type") == class_type:
            node["inputs"].update(inputs)
            n += 1
    return n
