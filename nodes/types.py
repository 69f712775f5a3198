"""The pack's custom socket types, declared once.

FADE_FILTER      algo.spectral.LowPassFilter: a 3-D low-pass over (t, h, w) with mask(t, h, w, device) returning the
                 float32 [t, h, w] gain in torch.fft.fftn (unshifted) order.
FADE_TRAJECTORY  nodes.fade.trajectory.Trajectory: the DDIM-inverted source latents in MODEL space (after the model's
                 process_in), one per sigma of the schedule, kept on ComfyUI's intermediate device.
"""
from comfy_api.latest import io

Filter = io.Custom("FADE_FILTER")
Trajectory = io.Custom("FADE_TRAJECTORY")

CATEGORY_FILTERS = "FADE/filters"
CATEGORY_FREEINIT = "FADE/FreeInit"
CATEGORY_EDITING = "FADE/editing"
CATEGORY_SAMPLING = "FADE/sampling"
