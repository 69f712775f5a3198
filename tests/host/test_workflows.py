"""The shipped workflows' graphs run end to end in ComfyUI's executor on tiny synthetic weights.

Stand-ins (and why): the UMT5 text encoder has no tiny loadable form (CLIPLoader's 'wan' type builds the full
5.7B-parameter config), so CLIPLoader + CLIPTextEncode become FADETEST_TextConditioning (random conditioning seeded
from the prompt text); the Wan VAE becomes FADETEST_TinyVAE (ComfyUI's own WanVAE class, narrow weights). The UNET is
ComfyUI's WanModel with tiny random weights loaded by the core UNETLoader. Sizes and steps are shrunk.
"""
import json
import os
import pathlib
import sys

import pytest

import harness
import tiny_models as tm

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "workflow_tools"))
import ui_graph  # noqa: E402

WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
CONTRACT = json.loads((ROOT / "tests" / "node_contract.json").read_text())["nodes"]


def api_prompt(path, enable_groups=()):
    """The UI workflow as the frontend would queue it; nodes inside the named groups are un-bypassed first (what
    the group's "Set Group Nodes to Always" does)."""
    import nodes
    workflow = json.loads(path.read_text())
    for node in nodes_in_groups(workflow, enable_groups):
        node["mode"] = 0
    prompt = ui_graph.ui_to_api(workflow, nodes.NODE_CLASS_MAPPINGS)
    return harness.swap_standins(prompt, family="wan21", unet_name=tm.write_unet("wan21"))


def nodes_in_groups(workflow, titles):
    """Nodes whose top-left corner lies inside a group with one of these title prefixes (the frontend's rule)."""
    found = []
    for group in workflow.get("groups", []):
        if not any(group["title"].startswith(t) for t in titles):
            continue
        x, y, w, h = group["bounding"]
        found += [n for n in workflow["nodes"] if x <= n["pos"][0] < x + w and y <= n["pos"][1] < y + h]
    return found


FADE_PATH = ROOT / "workflows" / "fade_video_edit_wan21.json"
CHECK_GROUP = "Inversion check"


def shrink(prompt, steps=3):
    harness.set_inputs(prompt, "EmptyHunyuanLatentVideo", width=64, height=64, length=9)
    harness.set_inputs(prompt, "KSampler", steps=steps)
    harness.set_inputs(prompt, "BasicScheduler", steps=steps + 1)
    harness.set_inputs(prompt, "ImageFromBatch", length=9)
    harness.set_inputs(prompt, "ImageScale", width=64, height=64)
    harness.set_inputs(prompt, "LoadVideo", file=harness.write_input_video(frames=12, height=72, width=80))
    harness.set_inputs(prompt, "FADE_SketchSpectrumGuide", sketch_blocks=2)
    return prompt


def test_every_shipped_workflow_is_ui_format_with_a_note_and_a_thumbnail():
    assert {p.stem for p in WORKFLOWS} >= {"freeinit_wan21_t2v", "fade_video_edit_wan21"}
    for path in WORKFLOWS:
        workflow = json.loads(path.read_text())
        assert workflow["version"] == 0.4 and isinstance(workflow["nodes"], list)
        types = {n["type"] for n in workflow["nodes"]}
        assert "MarkdownNote" in types or "Note" in types
        assert (path.with_suffix(".jpg")).exists(), f"{path.name} has no same-name .jpg thumbnail"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_shipped_workflow_uses_only_core_nodes_and_ours(comfy, path):
    import nodes
    workflow = json.loads(path.read_text())
    for node in workflow["nodes"]:
        kind = node["type"]
        if kind in ui_graph.FRONTEND_ONLY:
            continue
        assert kind in nodes.NODE_CLASS_MAPPINGS, f"{path.name}: unknown node type {kind}"
        module = getattr(nodes.NODE_CLASS_MAPPINGS[kind], "RELATIVE_PYTHON_MODULE", "nodes")   # nodes.py has none
        assert module == "nodes" or module.startswith(("comfy_extras", "custom_nodes.fade_freeinit")), (kind, module)


def inversion_check_latents(prompt, result):
    """(the SamplerCustomAdvanced ids, the inversion check's one, the VAE-encoded source, its reconstruction)."""
    encode = next(k for k, n in prompt.items() if n["class_type"] == "VAEEncode")
    runs = [k for k, n in prompt.items() if n["class_type"] == "SamplerCustomAdvanced"]
    rebuild = next(k for k in runs if prompt[k]["inputs"]["sampler"][0] in
                   {k2 for k2, n in prompt.items() if n["class_type"] == "KSamplerSelect"})
    return runs, rebuild, result.output(encode)["samples"], result.output(rebuild)["samples"]


def test_freeinit_workflow_runs_and_counts_every_pass_on_one_bar(comfy):
    prompt = shrink(api_prompt(ROOT / "workflows" / "freeinit_wan21_t2v.json"), steps=3)
    passes = next(n["inputs"]["passes"] for n in prompt.values() if n["class_type"] == "FADE_FreeInit")
    result = harness.run_prompt(prompt)
    sampler = next(k for k, n in prompt.items() if n["class_type"] == "KSampler")
    progress = result.progress(sampler)
    assert progress and max(p["max"] for p in progress) == passes * 3
    assert max(p["value"] for p in progress) == passes * 3
    save = next(k for k, n in prompt.items() if n["class_type"] == "SaveVideo")
    files = result[save].get("images") or []                    # SaveVideo's ui: PreviewVideo -> "images"
    assert len(files) == 1 and files[0]["filename"].endswith((".mp4", ".webm")), result[save]
    import folder_paths
    saved = os.path.join(folder_paths.get_output_directory(), files[0].get("subfolder", ""), files[0]["filename"])
    assert os.path.getsize(saved) > 0


A14B_FREEINIT_PATH = ROOT / "workflows" / "freeinit_wan22_a14b_t2v.json"
A14B_FADE_PATH = ROOT / "workflows" / "fade_video_edit_wan22_a14b.json"


@pytest.mark.parametrize("path", [FADE_PATH, A14B_FADE_PATH], ids=lambda p: p.stem)
def test_fade_workflow_has_a_bypassed_inversion_check_and_a_side_by_side_output(path):
    workflow = json.loads(path.read_text())
    check = nodes_in_groups(workflow, [CHECK_GROUP])
    assert {n["type"] for n in check} >= {"KSamplerSelect", "SamplerCustomAdvanced", "ImageStitch", "SaveVideo"}
    assert all(n["mode"] == 4 for n in check), "the inversion check must be bypassed by default"
    outside = [n for n in workflow["nodes"] if n not in check]
    assert all(n["mode"] == 0 for n in outside)
    assert next(n for n in check if n["type"] == "KSamplerSelect")["widgets_values"][0] == "ddim"
    saves = {n["widgets_values"][0] for n in outside if n["type"] == "SaveVideo"}
    assert saves == {"video/FADE_edit", "video/FADE_side_by_side"}
    # The user picks the clip: no invented file name that would 404 in the preview.
    assert [n["widgets_values"][0] for n in workflow["nodes"] if n["type"] == "LoadVideo"] == [""]
    # Rows, not one long line: close to the viewport's shape (1.6:1) so that fit-to-screen uses the whole screen.
    xs = [n["pos"][0] for n in workflow["nodes"]] + [n["pos"][0] + n["size"][0] for n in workflow["nodes"]]
    ys = [n["pos"][1] for n in workflow["nodes"]] + [n["pos"][1] + n["size"][1] for n in workflow["nodes"]]
    assert (max(xs) - min(xs)) / (max(ys) - min(ys)) < 2.0


def _relative_error(a, b):
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_fade_inversion_check_reconstructs_the_source(comfy):
    prompt = shrink(api_prompt(FADE_PATH, enable_groups=[CHECK_GROUP]), steps=7)
    harness.set_inputs(prompt, "FADE_DDIMInvert", refine=4)
    saves = {n["inputs"]["filename_prefix"] for n in prompt.values() if n["class_type"] == "SaveVideo"}
    assert "video/FADE_inversion_check" in saves
    result = harness.run_prompt(prompt)
    runs, rebuild, source, rebuilt = inversion_check_latents(prompt, result)
    assert rebuilt.shape == source.shape
    # A tiny random model is far from a real one (8 steps, refine 4: about 10 %, against ~1000 % for the edit).
    edit = result.output(next(k for k in runs if k != rebuild))["samples"]
    assert _relative_error(rebuilt, source) < 0.25
    assert _relative_error(rebuilt, source) < _relative_error(edit, source) / 3


def test_fade_workflow_runs_end_to_end(comfy):
    prompt = shrink(api_prompt(FADE_PATH))
    result = harness.run_prompt(prompt)
    run = next(k for k, n in prompt.items() if n["class_type"] == "SamplerCustomAdvanced")
    latent = result.output(run)["samples"]
    assert latent.shape[2] == 3 and latent.shape[-2:] == (8, 8)     # 9 frames, 64x64 through the Wan VAE
    invert = next(k for k, n in prompt.items() if n["class_type"] == "FADE_DDIMInvert")
    assert len(result.progress(invert)) > 0
    save = next(k for k, n in prompt.items() if n["class_type"] == "SaveVideo")
    assert result[save]


def test_help_pages_are_served_where_the_frontend_looks_first():
    # docs/<id>/en.md is fetched first, docs/<id>.md is the fallback; one is a copy of the other.
    docs = ROOT / "js" / "docs"
    for node_id in CONTRACT:
        page, copy = docs / f"{node_id}.md", docs / node_id / "en.md"
        assert page.is_file(), f"{node_id} has no help page"
        assert copy.is_file() and copy.read_bytes() == page.read_bytes(), (
            f"{copy.relative_to(ROOT)} differs from {page.name}: run tests/workflow_tools/sync_help_docs.py")


def test_english_locale_labels_every_input_and_nothing_else():
    labels = json.loads((ROOT / "locales" / "en" / "nodeDefs.json").read_text())
    assert set(labels) == set(CONTRACT)
    for node_id, entry in CONTRACT.items():
        names = set(entry["inputs"].get("required", {})) | set(entry["inputs"].get("optional", {}))
        given = labels[node_id]["inputs"]
        assert set(given) == names, (node_id, sorted(names ^ set(given)))
        assert all(isinstance(v.get("name"), str) and v["name"].strip() for v in given.values()), node_id
        # Display names and tooltips come from the Python schema only (no second copy to drift).
        assert set(labels[node_id]) == {"inputs"}, node_id


# ----------------------------------------------------------------------------------------------- Wan 2.2 A14B
def a14b_prompt(path, enable_groups=()):
    """api_prompt with the two experts as two different tiny models (the low-noise loader gets seed 1)."""
    import nodes
    workflow = json.loads(path.read_text())
    for node in nodes_in_groups(workflow, enable_groups):
        node["mode"] = 0
    prompt = ui_graph.ui_to_api(workflow, nodes.NODE_CLASS_MAPPINGS)
    low = [k for k, n in prompt.items() if n["class_type"] == "UNETLoader" and "low_noise" in n["inputs"]["unet_name"]]
    assert len(low) == 1 and sum(n["class_type"] == "UNETLoader" for n in prompt.values()) == 2
    prompt = harness.swap_standins(prompt, family="wan21", unet_name=tm.write_unet("wan21"))
    prompt[low[0]]["inputs"]["unet_name"] = tm.write_unet("wan21", seed=1)
    return prompt


def test_a14b_freeinit_workflow_runs_every_pass_over_both_experts_on_one_bar(comfy):
    prompt = shrink(a14b_prompt(A14B_FREEINIT_PATH), steps=3)
    passes = next(n["inputs"]["passes"] for n in prompt.values() if n["class_type"] == "FADE_FreeInit")
    result = harness.run_prompt(prompt)
    run = next(k for k, n in prompt.items() if n["class_type"] == "SamplerCustomAdvanced")
    progress = result.progress(run)
    assert progress and max(p["max"] for p in progress) == passes * 4      # BasicScheduler: steps + 1
    assert max(p["value"] for p in progress) == passes * 4
    save = next(k for k, n in prompt.items() if n["class_type"] == "SaveVideo")
    assert result[save]


def test_a14b_fade_workflow_runs_end_to_end_and_its_inversion_check_reconstructs(comfy):
    prompt = shrink(a14b_prompt(A14B_FADE_PATH, enable_groups=[CHECK_GROUP]), steps=7)
    harness.set_inputs(prompt, "FADE_DDIMInvert", refine=4)
    result = harness.run_prompt(prompt)
    runs, rebuild, source, rebuilt = inversion_check_latents(prompt, result)
    edit = result.output(next(k for k in runs if k != rebuild))["samples"]
    assert rebuilt.shape == source.shape == edit.shape
    assert _relative_error(rebuilt, source) < 0.25
    assert _relative_error(rebuilt, source) < _relative_error(edit, source) / 3
