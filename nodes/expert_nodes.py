"""The expert-pair guider node (Wan 2.2 A14B high-noise + low-noise experts in one SamplerCustomAdvanced)."""
from __future__ import annotations

from comfy_api.latest import io

from .experts.pair import BOUNDARY_I2V, BOUNDARY_T2V, ExpertPairGuider as PairGuider
from .types import CATEGORY_SAMPLING


class ExpertPairGuider(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FADE_ExpertPairGuider",
            display_name="Wan Expert Pair Guider",
            category=CATEGORY_SAMPLING,
            description=(
                "A GUIDER for SamplerCustomAdvanced that samples Wan 2.2 A14B's two experts in one run: the "
                "high-noise model on the steps that start at sigma >= boundary, the low-noise model on the rest "
                "(the split step is derived from the SIGMAS, so any step count works). Each part runs through "
                "ComfyUI's own CFG guider, so only one expert needs to be in VRAM at a time. FreeInit attached to "
                "either expert runs every pass over both experts; a Sketch-Block Spectrum Guide attached to either "
                "expert guides the whole schedule, each step with the expert that samples it."),
            inputs=[
                io.Model.Input("high_noise_model",
                               tooltip="The high-noise expert (wan2.2_*_high_noise_14B), after ModelSamplingSD3; "
                                       "may carry FreeInit or a Sketch-Block Spectrum Guide."),
                io.Model.Input("low_noise_model",
                               tooltip="The low-noise expert (wan2.2_*_low_noise_14B), after ModelSamplingSD3 with "
                                       "the same shift; may carry FreeInit or a Sketch-Block Spectrum Guide."),
                io.Conditioning.Input("positive", tooltip="The prompt, used by both experts."),
                io.Conditioning.Input("negative", tooltip="The negative prompt, used by both experts."),
                io.Float.Input("high_cfg", default=3.5, min=0.0, max=100.0, step=0.1,
                               tooltip="CFG scale of the high-noise expert (Wan 2.2 A14B templates: 3.5)."),
                io.Float.Input("low_cfg", default=3.5, min=0.0, max=100.0, step=0.1,
                               tooltip="CFG scale of the low-noise expert (Wan 2.2 A14B templates: 3.5)."),
                io.Float.Input("boundary", default=BOUNDARY_T2V, min=0.0, max=1.0, step=0.001,
                               tooltip=f"The sigma where sampling switches from the high-noise to the low-noise "
                                       f"expert: steps starting at sigma >= boundary use the high-noise one. "
                                       f"Official Wan 2.2: {BOUNDARY_T2V} for text-to-video, {BOUNDARY_I2V} for "
                                       f"image-to-video. Use the same value on DDIM Invert when editing."),
            ],
            outputs=[io.Guider.Output(tooltip="The GUIDER for SamplerCustomAdvanced (give it the SIGMAS of the "
                                              "whole schedule, e.g. BasicScheduler on either expert).")],
        )

    @classmethod
    def execute(cls, high_noise_model, low_noise_model, positive, negative, high_cfg: float, low_cfg: float,
                boundary: float) -> io.NodeOutput:
        return io.NodeOutput(PairGuider(high_noise_model, low_noise_model, positive, negative, high_cfg, low_cfg,
                                        boundary))
