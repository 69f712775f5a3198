"""Core tier: loads nodes/algo as a standalone package so that no ComfyUI (and not the pack root) is imported."""
import importlib.util
import pathlib
import sys

import pytest

ALGO_DIR = pathlib.Path(__file__).resolve().parents[2] / "nodes" / "algo"
ALGO_PACKAGE = "fade_algo_under_test"


def load_algo():
    """Import nodes/algo as the top-level package `fade_algo_under_test` (once)."""
    if ALGO_PACKAGE not in sys.modules:
        spec = importlib.util.spec_from_file_location(ALGO_PACKAGE, ALGO_DIR / "__init__.py",
                                                      submodule_search_locations=[str(ALGO_DIR)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[ALGO_PACKAGE] = module
        spec.loader.exec_module(module)
    return sys.modules[ALGO_PACKAGE]


@pytest.fixture(scope="session")
def algo():
    """The algo package; submodules via algo.spectral etc."""
    package = load_algo()
    for name in ("spectral", "freeinit", "ddim", "sketch"):
        importlib.import_module(f"{ALGO_PACKAGE}.{name}")
    return package
