"""Import stand-in for torchvision, used only by the host tests.

ComfyUI imports torchvision at module import time (comfy/ldm/cosmos/model.py,
predict2.py, ace VAE), but the torchvision wheels on PyPI pin a CUDA torch and do
not work with the CPU torch used here. The harness puts tests/stubs on sys.path
only when a real torchvision cannot be imported.
"""
__version__ = "0.0.0+fadetest.stub"

from . import transforms  # noqa: E402,F401
