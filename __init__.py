"""FADE & FreeInit for ComfyUI: frequency-domain video editing and noise re-initialisation.

ComfyUI loads this package as a custom node pack; it exports only the V3 entrypoint and the web directory. The
node modules are imported when ComfyUI calls the entrypoint, so importing the package itself needs no ComfyUI.
"""

WEB_DIRECTORY = "./js"


async def comfy_entrypoint():
    from .nodes.extension import FadeFreeInitExtension
    return FadeFreeInitExtension()


__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
