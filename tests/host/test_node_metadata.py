"""Every node of the pack: a V3 class registered through the entrypoint, with a description, tooltips on every
input and output, and a help page."""
import pathlib

import pytest

import harness

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE_IDS = ["FADE_GaussianLPF3D", "FADE_FreeInit", "FADE_FreeInitNoiseReinit", "FADE_DDIMInvert",
            "FADE_SketchSpectrumGuide", "FADE_ModulatedDDIMSampler", "FADE_ExpertPairGuider"]


def test_the_pack_registers_exactly_its_nodes_through_the_v3_entrypoint(comfy):
    import nodes
    ours = sorted(k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("FADE_"))
    assert ours == sorted(NODE_IDS)
    package = harness.pack_module("")
    assert set(package.__all__) == {"comfy_entrypoint", "WEB_DIRECTORY"}
    assert not hasattr(package, "NODE_CLASS_MAPPINGS")    # it would make ComfyUI ignore the V3 entrypoint


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_node_has_description_tooltips_and_help_page(comfy, node_id):
    from comfy_api.latest import io
    cls = harness.node_class(node_id)
    assert io.ComfyNode in cls.__bases__                  # ComfyUI-Manager's scanner needs the direct base
    schema = cls.define_schema()
    assert schema.node_id == node_id and schema.category.startswith("FADE/")
    assert schema.display_name.isascii() and len(schema.description) > 80
    for item in list(schema.inputs) + list(schema.outputs):
        assert item.tooltip and len(item.tooltip) > 15, f"{node_id}: {getattr(item, 'id', item)} has no tooltip"
    page = ROOT / "js" / "docs" / f"{node_id}.md"
    assert page.exists(), f"help page {page.name} missing"
    text = page.read_text()
    for item in schema.inputs:
        assert item.id in text or (item.display_name or "") in text, f"{page.name} does not explain {item.id}"
