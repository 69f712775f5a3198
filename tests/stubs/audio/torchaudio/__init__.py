"""Import stand-in for torchaudio, used only by the host tests.

ComfyUI v0.8+ imports torchaudio at start-up (audio VAEs, comfy_api/latest/_ui.py), but no torchaudio wheel
matches the CPU torch used here. The harness puts tests/stubs/audio on sys.path only when a real torchaudio
cannot be imported. Every name is a stand-in that raises when called.
"""
from fadetest_standin import module_getattr

__version__ = "0.0.0+fadetest.stub"
__getattr__ = module_getattr(__name__)

from . import functional, transforms  # noqa: E402,F401
