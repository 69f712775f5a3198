"""The 3D low-pass filter node."""
from __future__ import annotations

from comfy_api.latest import io

from .algo.spectral import FILTER_TYPES, REFERENCE_GRID, LowPassFilter
from .preview import render_response
from .types import CATEGORY_FILTERS, Filter


class GaussianLPF3D(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FADE_GaussianLPF3D",
            display_name="3D Low-Pass Filter",
            category=CATEGORY_FILTERS,
            description=(
                "A 3-D low-pass filter over the latent's (time, height, width) spectrum, for FreeInit (which "
                "frequencies of the previous pass survive) and for FADE (which frequencies of the sketch features "
                "are matched to the source). Cut-offs are normalised frequencies, 1 = Nyquist. The DC term always "
                "has gain 1, for odd frame counts too (the official FreeInit code attenuates it there)."),
            inputs=[
                io.Combo.Input("filter_type", options=list(FILTER_TYPES), default="gaussian",
                               tooltip="gaussian: smooth roll-off (FreeInit's choice for models with more flicker). "
                                       "butterworth: flatter pass band, sharper edge (the FreeInit README's default "
                                       "with order 4). ideal: hard sphere d <= d_s (the official code's threshold "
                                       "d^2 <= 2 d_s is a bug, fixed here). box: hard slab |f_t| <= d_t, "
                                       "|f_h|,|f_w| <= d_s (FADE's official code uses a 2/3 box)."),
                io.Float.Input("spatial_cutoff", default=0.25, min=0.0, max=1.0, step=0.01,
                               tooltip="Spatial cut-off d_s as a fraction of Nyquist. FreeInit's default is 0.25. "
                                       "0 keeps nothing (pure fresh noise). FADE's official box keeps 2/3 = 0.67."),
                io.Float.Input("temporal_cutoff", default=0.25, min=0.0, max=1.0, step=0.01,
                               tooltip="Temporal cut-off d_t as a fraction of Nyquist (FreeInit default 0.25). The "
                                       "filter is an ellipsoid with spatial radius d_s and temporal radius d_t."),
                io.Int.Input("butterworth_order", default=4, min=1, max=16,
                             tooltip="Order n of the Butterworth filter, 1/(1 + (d/d_s)^(2n)); higher is sharper. "
                                     "Ignored by the other filter types."),
            ],
            outputs=[
                Filter.Output(display_name="filter",
                              tooltip="The filter (FADE_FILTER), for FreeInit, FreeInit Noise Reinit and the "
                                      "Sketch-Block Spectrum Guide."),
                io.Image.Output(display_name="response",
                                tooltip="A picture of the response: spatial and temporal gain profiles with the "
                                        "cut-offs marked, and the fraction of spectrum bins and of white-noise "
                                        f"energy kept on a {'x'.join(map(str, REFERENCE_GRID))} latent."),
            ],
        )

    @classmethod
    def execute(cls, filter_type: str, spatial_cutoff: float, temporal_cutoff: float,
                butterworth_order: int) -> io.NodeOutput:
        lpf = LowPassFilter(filter_type, float(spatial_cutoff), float(temporal_cutoff), int(butterworth_order))
        return io.NodeOutput(lpf, render_response(lpf))
