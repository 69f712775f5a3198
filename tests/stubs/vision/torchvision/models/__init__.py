"""torchvision.models stand-in: names only."""
from fadetest_standin import module_getattr

__getattr__ = module_getattr(__name__)

from . import optical_flow  # noqa: E402,F401
