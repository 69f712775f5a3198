"""FreeInit's runtime (arXiv 2312.07537; the mathematics is in algo/freeinit.py).

- renoise:   the re-noise level policy per sampling type, and the NOISE that starts a pass at a re-initialised
             latent (also the FreeInit Noise Reinit node's NOISE).
- passes:    the pass loop (validation, schedules, seeds, one progress bar) and the OUTER_SAMPLE wrapper that runs
             any sampler through it.
"""
