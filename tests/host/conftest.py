"""Host tier: tests that run inside a real ComfyUI (see harness.py).

Without a ComfyUI checkout every test here is skipped and the run ends with
one line saying how to enable them; with one, ComfyUI is bootstrapped once per
session in-process and the pack is loaded through ComfyUI's own loader.
"""
import sys
from pathlib import Path

import pytest

HOST_DIR = Path(__file__).resolve().parent
# Lets host tests `import harness, tiny_models` (importlib mode adds no paths).
if str(HOST_DIR) not in sys.path:
    sys.path.insert(0, str(HOST_DIR))

import harness  # noqa: E402

SKIP_REASON = harness.unavailable_reason()


def _is_host_item(item):
    try:
        Path(str(item.path)).resolve().relative_to(HOST_DIR)
        return True
    except ValueError:
        return False


def pytest_collection_modifyitems(config, items):
    # This hook sees the whole session's items, not just ours.
    for item in items:
        if _is_host_item(item):
            item.add_marker(pytest.mark.host)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if SKIP_REASON:
        terminalreporter.write_line(SKIP_REASON)
        return
    import os
    root, _ = harness.find_comfyui()
    terminalreporter.write_line(f"host tests ran against ComfyUI {harness.host_version(root)} at {root}")
    others = [p for p in os.environ.get("COMFYUI_PATH", "").split(os.pathsep)[1:] if p.strip()]
    if others:
        terminalreporter.write_line(f"host tests NOT run against {others} (one host per process; "
                                    "python tests/run_all.py runs every host)")


@pytest.fixture(scope="session")
def comfy(tmp_path_factory):
    """The bootstrapped harness.Host (ComfyUI + our pack + FADETEST_ pack loaded)."""
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    return harness.bootstrap(tmp_path_factory.mktemp("comfy_base"))


@pytest.fixture(autouse=True)
def _host_session(request):
    # Every host test gets the bootstrap first, so tiny_models etc. never
    # configure ComfyUI with a different base directory.
    if SKIP_REASON:
        pytest.skip(SKIP_REASON)
    request.getfixturevalue("comfy")


@pytest.fixture
def run_prompt(comfy):
    return harness.run_prompt


@pytest.fixture
def pack_module(comfy):
    return harness.pack_module


@pytest.fixture(scope="session")
def models(comfy):
    """models(name) -> the tiny ModelPatcher of a tiny_models variant, built once per session (tests that change a
    model in place build their own with tiny_models.build)."""
    import tiny_models
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = tiny_models.build(name)
        return cache[name]
    return get

