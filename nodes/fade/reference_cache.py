"""The source side of FADE's energy, kept between runs: one process-wide cache with an explicit key, one budget
shared by every guide, LRU eviction, and a lifetime tied to what the entries were computed from.

Why cache: the source low bands at step t depend only on the trajectory, the source prompt, the filter, K, the
feature, the spectrum and the model's weights, so re-running an edit with another target prompt skips one K-block
pass per guided step.

Key (ReferenceKey): the guide's reference settings (GuideSettings.reference_settings: trajectory uid, source
prompt fingerprint, filter, K, feature, spectrum), the step and its sigma, the latent shape and dtype, and the
model's weight state: which BaseModel (checked through a weak reference, so a recycled id never matches),
ModelPatcher.patches_uuid (changed by every LoRA or weight patch), the object patches and the transformer_options
patches that can change the features. A patch applied after the guide is therefore a miss, never a stale hit.

Budget: FADE_REFERENCE_CACHE_MB if set (0 turns caching off), else 1/8 of physical RAM, at most 8 GiB. Inserting
past it evicts least recently used entries with a log line; an entry larger than the whole budget is refused with a
log line (the run still works, it just recomputes).

Lifetime: entries of a trajectory are dropped when ComfyUI frees it (its node cache releases the DDIM Invert
output: "Free model and node cache", a changed input, LRU cache modes); entries whose model is garbage collected or
no longer among ComfyUI's loaded models ("Unload models", memory pressure) are dropped when the next guided run
starts (sweep).
"""
from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch

import comfy.model_management

log = logging.getLogger("FADE")

BUDGET_ENV = "FADE_REFERENCE_CACHE_MB"
DEFAULT_RAM_FRACTION = 1.0 / 8.0
DEFAULT_CAP_BYTES = 8 << 30
# Storage dtype of the source bands by the dtype of the features they come from (default float32). bfloat16
# rounding (relative rms ~2e-3) is below a bfloat16 model's own zero-energy threshold, not a float16 or float32
# one's; float16 would also risk overflow at the spectrum's DC bins.
REFERENCE_STORAGE = {torch.bfloat16: torch.bfloat16}
FEATURE_PATCH_KINDS = ("patches", "patches_replace")   # transformer_options entries that can change block outputs


def default_budget_bytes() -> int:
    configured = os.environ.get(BUDGET_ENV)
    if configured is not None and configured.strip() != "":
        return max(0, int(float(configured) * (1 << 20)))
    try:
        import psutil
        total = psutil.virtual_memory().total
    except Exception:   # psutil is a ComfyUI requirement; be safe anyway
        total = 16 << 30
    return int(min(total * DEFAULT_RAM_FRACTION, DEFAULT_CAP_BYTES))


def _callable_ids(value) -> Tuple:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _callable_ids(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_callable_ids(v) for v in value)
    return (type(value).__name__, id(value))


def weight_state(patcher, model_options: Optional[dict]) -> Tuple:
    """What of the sampling MODEL decides its sketch features, besides the input: LoRA / weight patches, object
    patches (e.g. a replaced diffusion_model) and the feature-changing transformer_options patches."""
    object_patches = tuple(sorted((name, type(obj).__name__, id(obj))
                                  for name, obj in getattr(patcher, "object_patches", {}).items()))
    transformer_options = (model_options or {}).get("transformer_options", {})
    feature_patches = tuple((kind, _callable_ids(transformer_options.get(kind, {})))
                            for kind in FEATURE_PATCH_KINDS)
    dtype = patcher.model.get_dtype() if hasattr(patcher.model, "get_dtype") else None
    return (str(getattr(patcher, "patches_uuid", "")), object_patches, feature_patches, str(dtype))


@dataclass(frozen=True)
class ReferenceKey:
    trajectory_uid: str
    guide_settings: Tuple
    model_id: int
    weight_state: Tuple
    step: int
    sigma: float
    shape: Tuple[int, ...]
    dtype: str


def make_key(settings, patcher, model_options: Optional[dict], step: int, sigma: float, x: torch.Tensor
             ) -> ReferenceKey:
    return ReferenceKey(settings.trajectory.uid, settings.reference_settings(), id(patcher.model),
                        weight_state(patcher, model_options), int(step), float(sigma), tuple(x.shape), str(x.dtype))


class _Entry:
    __slots__ = ("bands", "size", "model_ref")

    def __init__(self, bands: List[torch.Tensor], size: int, model):
        self.bands = bands
        self.size = size
        self.model_ref = weakref.ref(model)


def _compact(band: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A complex band as a (real, imaginary) tensor on the offload device, pinned when that is the CPU and the
    band is on the GPU, copied without blocking."""
    offload = comfy.model_management.intermediate_device()
    pinned = torch.cuda.is_available() and band.device.type == "cuda" and torch.device(offload).type == "cpu"
    real = torch.view_as_real(band).to(dtype)
    out = torch.empty(real.shape, dtype=real.dtype, device=offload, pin_memory=pinned)
    out.copy_(real, non_blocking=pinned)
    return out


def _is_loaded(model) -> bool:
    """Whether ComfyUI's model management currently holds `model` (a BaseModel) loaded."""
    for loaded in list(getattr(comfy.model_management, "current_loaded_models", [])):
        patcher = getattr(loaded, "model", None)
        if patcher is not None and getattr(patcher, "model", None) is model:
            return True
    return False


class ReferenceCache:
    """Process-wide LRU cache of source low bands (see the module docstring)."""

    def __init__(self, budget_bytes: Optional[int] = None):
        self._budget = budget_bytes
        self._entries: "OrderedDict[ReferenceKey, _Entry]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.RLock()
        self._watched: Dict[str, weakref.finalize] = {}

    @property
    def budget_bytes(self) -> int:
        return default_budget_bytes() if self._budget is None else self._budget

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> List[ReferenceKey]:
        with self._lock:
            return list(self._entries)

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def lookup(self, key: ReferenceKey, model, device) -> Optional[List[torch.Tensor]]:
        """The cached bands (complex float32 on `device`), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.model_ref() is not model:
                return None
            self._entries.move_to_end(key)
            return self._expand(entry, device)

    def compute(self, key: ReferenceKey, model, trajectory, compute: Callable[[], Tuple[List[torch.Tensor], torch.dtype]],
                device) -> Tuple[List[torch.Tensor], str]:
        """The bands for `key`: cached ones, else compute() -> (bands, feature dtype), stored if the budget allows.
        Returns (bands, "reused" | "computed" | "refused"). Both paths return the stored (rounded) values, so a
        re-run reproduces the first run exactly."""
        cached = self.lookup(key, model, device)
        if cached is not None:
            return cached, "reused"
        bands, feature_dtype = compute()
        storage = REFERENCE_STORAGE.get(feature_dtype, torch.float32)
        stored = [_compact(band, storage) for band in bands]
        entry = _Entry(stored, sum(b.numel() * b.element_size() for b in stored), model)
        status = "computed" if self._insert(key, entry, trajectory) else "refused"
        return self._expand(entry, device), status

    def _insert(self, key: ReferenceKey, entry: _Entry, trajectory) -> bool:
        budget = self.budget_bytes
        with self._lock:
            if entry.size > budget:
                log.info("FADE reference cache: a %.1f MiB entry is larger than the whole budget (%.1f MiB, set %s "
                         "to change it); not cached, later runs recompute it", entry.size / 2**20, budget / 2**20,
                         BUDGET_ENV)
                return False
            evicted, freed = 0, 0
            while self._entries and self._bytes + entry.size > budget:
                _, old = self._entries.popitem(last=False)
                self._bytes -= old.size
                evicted, freed = evicted + 1, freed + old.size
            if evicted:
                log.info("FADE reference cache: evicted %d least recently used entries (%.1f MiB) to stay within "
                         "%.1f MiB (%s)", evicted, freed / 2**20, budget / 2**20, BUDGET_ENV)
            self._entries[key] = entry
            self._bytes += entry.size
            self._watch(trajectory)
            return True

    def _watch(self, trajectory):
        """Drop a trajectory's entries when ComfyUI frees the trajectory."""
        uid = trajectory.uid
        if uid not in self._watched:
            self._watched[uid] = weakref.finalize(trajectory, self.drop_trajectory, uid)

    def drop_trajectory(self, uid: str):
        with self._lock:
            self._watched.pop(uid, None)
            self._drop(lambda key, entry: key.trajectory_uid == uid)

    def sweep(self):
        """Drop entries whose model was garbage collected or is no longer loaded by ComfyUI."""
        with self._lock:
            alive = {}
            for entry in self._entries.values():
                model = entry.model_ref()
                if model is not None and id(model) not in alive:
                    alive[id(model)] = _is_loaded(model)
            self._drop(lambda key, entry: entry.model_ref() is None or not alive.get(id(entry.model_ref()), False))

    def _drop(self, condition):
        dropped = [key for key, entry in self._entries.items() if condition(key, entry)]
        for key in dropped:
            self._bytes -= self._entries.pop(key).size
        if dropped:
            log.debug("FADE reference cache: dropped %d entries", len(dropped))

    @staticmethod
    def _expand(entry: _Entry, device) -> List[torch.Tensor]:
        return [torch.view_as_complex(b.to(device, non_blocking=True).float()) for b in entry.bands]


REFERENCE_CACHE = ReferenceCache()
