"""Two-expert models (Wan 2.2 A14B: high-noise + low-noise) as one GUIDER.

- pair: the GUIDER that samples each part of a schedule with its expert (through ComfyUI's own CFGGuider, so
        model management keeps one expert resident at a time), runs FreeInit passes over the whole high -> low
        pipeline, and carries FADE's guide across both experts.
"""
