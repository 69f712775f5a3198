"""ComfyUI glue, one module per concern; both methods' runtimes and the node files use it.

- sampling:       sampling types (flow / variance-exploding), noise units, the NOISE that starts a sampler at a
                  given latent, interruption.
- wrappers:       the pack's wrapper key and finding / replacing the pack's wrappers on a clone.
- capture:        the first K blocks' features of a video DiT, with early exit.
- gradient_pass:  autograd inside a node on every host (inference tensors, fused kernels, attention, dynamic VRAM).
- compat:         the signatures that differ between the supported ComfyUI versions.
- progress:       status text on the node and one progress bar over several sampling calls.
- validation:     input checks at the node and runtime boundaries, one per contract.
"""
