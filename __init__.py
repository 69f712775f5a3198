"""FADE & FreeInit for ComfyUI: frequency-domain video editing and noise re-initialisation.

ComfyUI loads this package as a custom node pack; it exports only the V3 entrypoint and the web directory.
"""
from .nodes.extension import comfy_entrypoint

WEB_DIRECTORY = "./js"

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
