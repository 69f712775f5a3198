"""FADE's runtime (arXiv 2506.05934; official code MIT, EternalEvan/FADE; the mathematics is in algo/).

Read in this order:
- trajectory:       DDIM inversion as a ComfyUI Sampler, the inverted trajectory (FADE_TRAJECTORY) and the NOISE
                    that starts an edit on it.
- guide:            the guide's settings (what the Sketch-Block Spectrum Guide node makes) and how they ride on a
                    cloned MODEL.
- reference_cache:  the source side of the energy, cached process-wide under an explicit key with one budget.
- sampler:          the modulated DDIM sampler: per run, G_t's gradient through the first K blocks, folded into
                    each guided step.
"""
