"""Names-only stand-ins for the optional packages ComfyUI imports at start-up (torchvision.ops, torchaudio ...).

Host tests never call them; a call raises, so a stand-in can never produce a silently wrong result.
"""


class StandInError(RuntimeError):
    pass


def missing(qualified_name):
    """A class-like callable whose construction or call raises StandInError naming what was used."""

    class _StandIn:
        def __init__(self, *args, **kwargs):
            raise StandInError(f"{qualified_name} is a test stand-in (the real package is not installed here)")

        def __init_subclass__(cls, **kwargs):   # some modules subclass transforms at import time
            super().__init_subclass__()

    _StandIn.__name__ = _StandIn.__qualname__ = qualified_name.rsplit(".", 1)[-1]
    return _StandIn


def module_getattr(module_name):
    """A module-level __getattr__ (PEP 562): every unknown public name is a stand-in."""

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return missing(f"{module_name}.{name}")
    return __getattr__
