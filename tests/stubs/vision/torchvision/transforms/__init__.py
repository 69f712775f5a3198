"""Only the names ComfyUI touches: InterpolationMode, functional.resize, Compose, Normalize."""
import enum

import torch
from fadetest_standin import module_getattr

__getattr__ = module_getattr(__name__)   # ToPILImage, ToTensor ...: names only


class InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"


from . import functional  # noqa: E402,F401  (needs InterpolationMode defined first)


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x


class Normalize:
    def __init__(self, mean, std, inplace=False):
        self.mean, self.std = mean, std

    def __call__(self, x):
        # Channel dim is -3 as in torchvision; scalars broadcast.
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device)
        if mean.ndim == 1:
            mean = mean.view(-1, 1, 1)
        if std.ndim == 1:
            std = std.view(-1, 1, 1)
        return (x - mean) / std
