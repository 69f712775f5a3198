"""The pack's wrappers on a MODEL: one key, and replacing them on a clone."""
from __future__ import annotations

from typing import Optional

import comfy.patcher_extension

PACK_KEY = "fade_freeinit"


def remove_pack_wrappers(patcher, wrapper_type: str, cls) -> bool:
    """Drop this pack's wrappers of class `cls` from `patcher` (a fresh clone: clone() copies the wrapper lists,
    so the input MODEL keeps its own). Returns whether there were any. Rebuilds the list rather than calling
    remove_wrappers_with_key so that other wrappers under the pack key stay."""
    by_key = patcher.wrappers.get(wrapper_type, {})
    current = by_key.get(PACK_KEY, [])
    kept = [w for w in current if not isinstance(w, cls)]
    if len(kept) == len(current):
        return False
    if kept:
        by_key[PACK_KEY] = kept
    else:
        by_key.pop(PACK_KEY, None)
    return True


def replace_pack_wrapper(patcher, wrapper_type: str, wrapper) -> bool:
    """Attach `wrapper` under the pack key, replacing any earlier one of its class (stacking the same node twice
    replaces the settings instead of applying them twice). Returns whether one was replaced."""
    replaced = remove_pack_wrappers(patcher, wrapper_type, type(wrapper))
    patcher.add_wrapper_with_key(wrapper_type, PACK_KEY, wrapper)
    return replaced


def find_pack_wrapper(model_options: Optional[dict], wrapper_type: str, cls):
    """This pack's wrapper of class `cls` in a sampling call's model_options, or None."""
    wrappers = comfy.patcher_extension.get_wrappers_with_key(wrapper_type, PACK_KEY, model_options or {},
                                                              is_model_options=True)
    for wrapper in wrappers:
        if isinstance(wrapper, cls):
            return wrapper
    return None


def find_patcher_wrapper(patcher, wrapper_type: str, cls):
    """This pack's wrapper of class `cls` attached to a MODEL (ModelPatcher), or None."""
    for wrapper in patcher.wrappers.get(wrapper_type, {}).get(PACK_KEY, []):
        if isinstance(wrapper, cls):
            return wrapper
    return None
