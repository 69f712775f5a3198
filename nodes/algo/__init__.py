"""Pure-torch mathematics of the pack. Nothing in this package imports ComfyUI.

- spectral: 3-D low-pass filters over (t, h, w), frequency mixing, both latent layouts.
- freeinit: FreeInit re-noising and re-initialisation in sigma space, coarse-to-fine schedules.
- ddim:     DDIM (eta = 0) steps and inversion with fixed-point refinement.
- sketch:   FADE's sketch-block spectrum energy and gradient normalisations.
"""
