"""torchvision.ops stand-in: names only (roi_align, deform_conv2d ... raise when called)."""
from fadetest_standin import module_getattr

__getattr__ = module_getattr(__name__)

from . import deform_conv  # noqa: E402,F401
