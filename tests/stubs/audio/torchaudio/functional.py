"""torchaudio.functional stand-in: names only."""
from fadetest_standin import module_getattr

__getattr__ = module_getattr(__name__)
