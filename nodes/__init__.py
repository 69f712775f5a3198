"""Node package. `algo/` is pure torch (no ComfyUI imports); the other modules are the ComfyUI glue."""
