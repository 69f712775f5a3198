"""The pack's one ComfyExtension: the list of nodes ComfyUI registers."""
from comfy_api.latest import ComfyExtension, io

from .expert_nodes import ExpertPairGuider
from .fade_nodes import DDIMInvert, ModulatedDDIMSampler, SketchSpectrumGuide
from .filter_nodes import GaussianLPF3D
from .freeinit_nodes import FreeInit, FreeInitNoiseReinit

NODES = [GaussianLPF3D, FreeInit, FreeInitNoiseReinit, DDIMInvert, SketchSpectrumGuide, ModulatedDDIMSampler,
         ExpertPairGuider]


class FadeFreeInitExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
