"""Import stand-in for torchvision, used only by the host tests.

ComfyUI imports torchvision at module import time (comfy/ldm/cosmos/model.py,
predict2.py, ace VAE), but the torchvision wheels on PyPI pin a CUDA torch and do
not work with the CPU torch used here. The harness puts tests/stubs/vision on
sys.path only when a real torchvision cannot be imported. Names it does not
implement are stand-ins that raise when called.
"""
from fadetest_standin import module_getattr

__version__ = "0.0.0+fadetest.stub"
__getattr__ = module_getattr(__name__)

from . import models, ops, transforms  # noqa: E402,F401
