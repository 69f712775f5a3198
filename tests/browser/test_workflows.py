"""Every shipped workflow through the real frontend: template route -> canvas -> graphToPrompt -> tiny-model run.

Plus the pack's frontend pieces on their own: the extension loads cleanly and the LPF preview redraws from its
widgets without a server round trip.
"""
import json
import shutil
from pathlib import Path

import pytest

import comfy_server
import frontend
import harness
from standins import tiny_prompt

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
# The folders ComfyUI serves as template-browser workflows (app/custom_node_manager.py).
TEMPLATE_DIRS = ("example_workflows", "example", "examples", "workflow", "workflows")
PACK = harness.PACK_DIR_NAME


def shipped_workflows():
    return [path for d in TEMPLATE_DIRS for path in sorted((REPO_ROOT / d).glob("*.json"))]


def fixture_workflows():
    return sorted((HERE / "fixture_pack" / "example_workflows").glob("*.json"))


WORKFLOWS = [pytest.param(PACK, p, id=f"{PACK}/{p.stem}") for p in shipped_workflows()] + \
    [pytest.param(comfy_server.FIXTURE_PACK, p, id=f"fixture/{p.stem}") for p in fixture_workflows()]


def test_frontend_loads_the_pack_cleanly(fe):
    assert fe.frontend_errors(fe.startup_errors) == [], "errors while the frontend started (our extension?)"
    assert frontend.EXTENSION_NAME in frontend.registered_extensions(fe.page)
    listed = fe.server.get("/extensions")
    for name in ("fade_nodes.js", "lpf_math.js"):
        assert f"/extensions/{PACK}/{name}" in listed
    templates = fe.server.get("/workflow_templates")
    assert sorted(templates.get(PACK, [])) == sorted(p.stem for p in shipped_workflows())


def test_frontend_widgets_match_the_node_contract(fe):
    """widgets_values are positional: the frontend's widget order must be the one the contract records."""
    contract = json.loads((REPO_ROOT / "tests" / "node_contract.json").read_text())["nodes"]
    widgets = fe.page.call("""(types) => Object.fromEntries(types.map((type) => {
        const node = LiteGraph.createNode(type);
        const names = [];
        let previous = null;
        for (const w of node.widgets ?? []) {
          if (w.serialize === false) continue;             // our canvas previews
          names.push(w.name === "control_after_generate" ? `${previous}:control_after_generate` : w.name);
          previous = w.name;
        }
        return [type, names];
    }))""", sorted(contract))
    assert widgets == {node_id: entry["widgets"] for node_id, entry in contract.items()}


def _new_node(fe, node_type, widgets=None):
    return fe.page.call("""(type, widgets) => {
        app.graph.clear();
        const node = LiteGraph.createNode(type);
        node.pos = [100, 100];
        app.graph.add(node);
        for (const [name, value] of Object.entries(widgets)) node.widgets.find((w) => w.name === name).value = value;
        return node.id;
    }""", node_type, widgets or {})


def test_lpf_preview_redraws_from_its_widgets(fe):
    node = _new_node(fe, frontend.LPF_NODE)
    changes = [("spatial_cutoff", 0.6), ("temporal_cutoff", 0.05), ("filter_type", "box")]
    seen = frontend.inspect_widget(fe.page, node, "fade_lpf_preview", changes=changes)
    spatial, temporal = seen["counts"]
    assert spatial > 50 and temporal > 50, f"profile curves not drawn: {seen}"
    kept = seen["state"]["kept"]
    assert 0 < kept < 1 and seen["state"]["energy"] < kept
    for change in seen["changes"]:
        assert change["differing"] > 100, f"preview did not redraw after {change['name']} = {change['value']}"
        assert change["state"]["kept"] != kept, change

    node = _new_node(fe, frontend.LPF_NODE, {"filter_type": "butterworth"})
    seen = frontend.inspect_widget(fe.page, node, "fade_lpf_preview", changes=[("butterworth_order", 1)])
    assert seen["changes"][0]["differing"] > 100 and seen["changes"][0]["state"]["kept"] != seen["state"]["kept"]

    # A cut-off driven by a link: the preview says that it shows the widget value.
    linked = fe.page.call("""(id) => {
        const lpf = app.graph.getNodeById(id);
        const source = LiteGraph.createNode("PrimitiveFloat");
        app.graph.add(source);
        source.connect(0, lpf, lpf.findInputSlot("spatial_cutoff"));
        app.canvas.draw(true, true);
        return lpf.fadeLpfPreview.linked;
    }""", node)
    assert linked is True

    # An out-of-range value (set by another extension, say; the UI clamps) shows the core's message, no exception.
    seen = frontend.inspect_widget(fe.page, node, "fade_lpf_preview", changes=[("spatial_cutoff", 1.5, False)])
    assert "spatial_cutoff must lie in [0, 1]" in seen["changes"][0]["state"].get("error", ""), seen
    assert fe.frontend_errors(fe.page.errors) == [] and not [w for w in fe.page.warnings if "[FADE]" in w]


def test_guide_shows_the_guided_step_share(fe):
    node = _new_node(fe, frontend.GUIDE_NODE, {"guided_fraction": 0.6})
    bar = (55, 108, 152)     # COLORS.guided at 55 % over the panel colour
    seen = frontend.inspect_widget(fe.page, node, "fade_guide_steps", colours=[bar],
                                   changes=[("guided_fraction", 0.2)])
    at_60, at_20 = seen["counts"][0], seen["changes"][0]["counts"][0]
    assert at_60 > 500 and 0 < at_20 < at_60 / 2, seen
    assert fe.frontend_errors(fe.page.errors) == []


@pytest.mark.parametrize("pack, path", WORKFLOWS)
def test_workflow_loads_draws_converts_and_runs(fe, pack, path):
    page, name = fe.page, path.stem
    comfy_server.provide_input_media(fe.base, json.loads(path.read_text()))
    loaded = frontend.load_template(page, pack, name)
    assert loaded["missing"] == [], f"missing node types: {loaded['missing']}"
    unregistered = [n for n in loaded["nodes"] if not n["registered"] or n["has_errors"]]
    assert not unregistered, unregistered
    page.pump(0.2)
    assert fe.frontend_errors(page.errors) == [], "console errors while loading the workflow"

    for node_id in frontend.nodes_of_type(page, frontend.LPF_NODE):
        seen = frontend.inspect_widget(page, node_id, "fade_lpf_preview")
        assert min(seen["counts"]) > 50, f"LPF preview of node {node_id} did not draw: {seen}"
        assert "error" not in (seen["state"] or {}), seen["state"]

    rect = frontend.frame_graph(page)
    shot = fe.screenshots / f"{name}.jpg"
    page.screenshot(shot, clip=rect, scale=min(1.0, 1024 / rect["width"]))
    if pack == PACK and frontend.write_thumbnails():
        shutil.copyfile(shot, path.with_suffix(".jpg"))
    # The FADE template ships without a clip: pick the test clip, as the user picks theirs.
    for node_id in frontend.nodes_of_type(page, "LoadVideo"):
        if not frontend.widget_states(page, node_id)["file"]["value"]:
            frontend.set_widget(page, node_id, "file", comfy_server.INPUT_VIDEO)

    prompt = frontend.graph_to_prompt(page)
    types_in_graph = {n["type"] for n in loaded["nodes"] if n["type"].startswith("FADE_")}
    assert types_in_graph <= {node["class_type"] for node in prompt.values()}

    run = tiny_prompt(prompt, fe.unet_name)
    status, response = fe.server.queue(run)
    assert status == 200 and response.get("node_errors") == {}, f"/prompt refused the graph: {response}"
    entry = fe.server.wait_history(response["prompt_id"])
    failure = [m for m in entry["status"].get("messages", []) if m[0] == "execution_error"]
    assert entry["status"]["status_str"] == "success", f"{failure}\n{fe.server.log_tail()}"
    info = fe.server.get("/object_info")
    outputs = {nid for nid, node in run.items() if info.get(node["class_type"], {}).get("output_node")}
    missing = outputs - set(entry["outputs"])
    assert outputs and not missing, f"output nodes without results: {missing}"
    page.pump(0.2)
    assert fe.frontend_errors(page.errors) == [], "console errors while converting or running"


@pytest.mark.parametrize("path", shipped_workflows(), ids=lambda p: p.stem)
def test_shipped_workflow_has_a_thumbnail(fe, path):
    # The template browser always asks for <name>.jpg next to the JSON (no png/webp, no index file).
    thumbnail = path.with_suffix(".jpg")
    assert thumbnail.is_file(), f"{thumbnail.name} missing: run the browser tests with FADE_WRITE_THUMBNAILS=1"
    assert fe.server.status(f"/api/workflow_templates/{PACK}/{thumbnail.name}") == 200


# ------------------------------------------------------------------------------------------ issue 13: newcomers

def _add_node(fe, node_type):
    return fe.page.call("""(type) => {
        const node = LiteGraph.createNode(type);
        node.pos = [500, 100];
        app.graph.add(node);
        return node.id;
    }""", node_type)


def test_widgets_that_do_not_apply_are_hidden(fe):
    page = fe.page
    lpf = _new_node(fe, frontend.LPF_NODE)                         # gaussian
    height = page.call("(id) => app.graph.getNodeById(id).size[1]", lpf)
    assert frontend.widget_states(page, lpf)["butterworth_order"]["visible"] is False
    frontend.set_widget(page, lpf, "filter_type", "butterworth")
    state = frontend.widget_states(page, lpf)["butterworth_order"]
    assert state["visible"] is True and state["optionsHidden"] is False
    assert page.call("(id) => app.graph.getNodeById(id).size[1]", lpf) > height   # the node grew to show it
    frontend.set_widget(page, lpf, "filter_type", "box")
    assert frontend.widget_states(page, lpf)["butterworth_order"]["optionsHidden"] is True

    guide = _add_node(fe, frontend.GUIDE_NODE)                      # unit normalisation
    states = frontend.widget_states(page, guide)
    assert not states["ratio_min"]["visible"] and not states["ratio_max"]["visible"]
    assert states["strength"]["visible"] and states["memory"]["visible"]
    frontend.set_widget(page, guide, "normalisation", "cfg-relative")
    states = frontend.widget_states(page, guide)
    assert states["ratio_min"]["visible"] and states["ratio_max"]["visible"]

    sampler = _add_node(fe, "FADE_ModulatedDDIMSampler")
    assert frontend.widget_states(page, sampler)["blend_fraction"]["visible"] is False
    page.call("""(id) => {
        const node = app.graph.getNodeById(id);
        const mask = LiteGraph.createNode("SolidMask");
        app.graph.add(mask);
        mask.connect(0, node, node.findInputSlot("mask"));
    }""", sampler)
    assert frontend.widget_states(page, sampler)["blend_fraction"]["visible"] is True

    # Hidden widgets still save and queue their values (widget order is the node contract).
    prompt = frontend.graph_to_prompt(page)
    guide_inputs = prompt[str(guide)]["inputs"]
    assert guide_inputs["ratio_min"] == 0.33 and guide_inputs["ratio_max"] == 3.0
    assert prompt[str(lpf)]["inputs"]["butterworth_order"] == 4
    assert fe.frontend_errors(page.errors) == [] and not [w for w in page.warnings if "[FADE]" in w]


def test_renoise_sigma_reads_auto_at_zero(fe):
    page = fe.page
    for node_type in ("FADE_FreeInit", "FADE_FreeInitNoiseReinit"):
        node = _new_node(fe, node_type)
        state = frontend.widget_states(page, node)["renoise_sigma"]
        assert state["value"] == 0 and "0 = auto" in (state["label"] or "")
        if state["display"] is not None:                            # classic number widgets draw _displayValue
            assert state["display"] == "auto"
            frontend.set_widget(page, node, "renoise_sigma", 0.5)
            assert frontend.widget_states(page, node)["renoise_sigma"]["display"] == "0.500"
            # Newer frontends keep widget values by node id across graph.clear(): put the default back.
            frontend.set_widget(page, node, "renoise_sigma", 0.0)


def test_inputs_have_human_labels_and_help_pages_are_found_first_time(fe):
    page = fe.page
    lpf = _new_node(fe, frontend.LPF_NODE)
    assert frontend.widget_states(page, lpf)["spatial_cutoff"]["label"] == "spatial cut-off d_s (1 = Nyquist)"
    invert = _add_node(fe, "FADE_DDIMInvert")
    labels = page.call("(id) => app.graph.getNodeById(id).inputs.map((i) => [i.name, i.label ?? i.localized_name])",
                       invert)
    assert ["conditioning", "inversion prompt (empty)"] in labels, labels
    assert page.call("(id) => app.graph.getNodeById(id).title", lpf) == "3D Low-Pass Filter"
    translations = fe.server.get("/i18n") or {}
    assert "FADE_GaussianLPF3D" in translations.get("en", {}).get("nodeDefs", {})
    for node_type in frontend.FADE_NODE_TYPES:
        # The frontend asks for docs/<id>/<locale>.md before docs/<id>.md.
        assert fe.server.status(f"/extensions/{PACK}/docs/{node_type}/en.md") == 200, node_type
        assert fe.server.status(f"/extensions/{PACK}/docs/{node_type}.md") == 200, node_type


def _run_tiny(fe, prompt):
    run = tiny_prompt(prompt, fe.unet_name)
    status, response = fe.server.queue(run)
    assert status == 200 and response.get("node_errors") == {}, f"/prompt refused the graph: {response}"
    entry = fe.server.wait_history(response["prompt_id"])
    assert entry["status"]["status_str"] == "success", fe.server.log_tail()
    return run, entry


def test_fade_template_inversion_check_is_one_group_away(fe):
    page = fe.page
    comfy_server.provide_input_media(fe.base, {})
    loaded = frontend.load_template(page, PACK, "fade_video_edit_wan21")
    assert loaded["missing"] == []
    check = frontend.group_nodes(page, "Inversion check")
    assert check and {n["type"] for n in check} >= {"KSamplerSelect", "SamplerCustomAdvanced", "SaveVideo"}
    assert all(n["mode"] == 4 for n in check), check
    # The Note renders with the space after each code span (the renderer lost it at hard line breaks).
    note = page.evaluate("""[...document.querySelectorAll('.comfy-markdown, .tiptap, .ProseMirror')]
        .map((e) => e.innerText).join(' ')""")
    assert "`refine` 6 (the" not in note and "refine 6 (the" in note and "plain ddim sampler" in note, note[:400]
    ids = {str(n["id"]) for n in check}
    assert not ids & set(frontend.graph_to_prompt(page)), "a bypassed group must not be queued"

    # The LPF preview describes this graph's latent: 832x480, 33 frames -> 9x60x104.
    lpf = frontend.nodes_of_type(page, frontend.LPF_NODE)[0]
    state = frontend.inspect_widget(page, lpf, "fade_lpf_preview")["state"]
    assert state["grid"] == [9, 60, 104] and "33 frames" in state["gridText"], state

    assert frontend.set_group_mode(page, "Inversion check", 0) == len(check)
    prompt = frontend.graph_to_prompt(page)
    assert ids <= set(prompt)
    plain = next(node for node in prompt.values() if node["class_type"] == "KSamplerSelect")
    assert plain["inputs"]["sampler_name"] == "ddim"
    for node in prompt.values():
        if node["class_type"] == "LoadVideo" and not node["inputs"].get("file"):
            node["inputs"]["file"] = comfy_server.INPUT_VIDEO      # the user's pick
    run, entry = _run_tiny(fe, prompt)
    saves = {k for k, n in run.items() if n["class_type"] == "SaveVideo"}
    assert saves <= set(entry["outputs"]) and len(saves) == 3
    assert fe.frontend_errors(page.errors) == []


def _templates():
    return [p.stem for p in shipped_workflows()]


def test_templates_do_not_overlap_in_classic_and_vue_nodes_modes(fe):
    page = fe.page
    version = frontend.frontend_version(page)
    modes = [False] + ([True] if version >= (1, 30, 0) else [])    # Vue nodes before 1.30: a beta, fixed widths
    try:
        for vue in modes:
            if vue:
                frontend.set_setting(page, "Comfy.VueNodes.Enabled", True)
                frontend.wait_ready(page, fe.server.url, frontend.FADE_NODE_TYPES)
                page.pump(0.5)
                page.errors.clear()
            for name in _templates():
                frontend.load_template(page, PACK, name)
                frontend.frame_graph(page)
                page.pump(1.0)
                seen = frontend.node_overlaps(page, vue=vue)
                assert seen["missing"] == [] and seen["pairs"] == [], (name, "vue" if vue else "classic", seen)
                assert fe.frontend_errors(page.errors) == [], (name, vue)
            if vue:
                # Hidden widgets stay hidden in the Vue DOM and appear when they apply.
                frontend.load_template(page, PACK, "fade_video_edit_wan21")
                page.pump(0.5)
                guide = frontend.nodes_of_type(page, frontend.GUIDE_NODE)[0]
                text = lambda: page.call(
                    "(id) => document.querySelector(`[data-node-id=\"${id}\"]`)?.innerText ?? ''", guide)
                assert "ratio" not in text() and "memory" in text(), text()
                frontend.set_widget(page, guide, "normalisation", "cfg-relative")
                page.pump(0.5)
                assert "ratio" in text(), text()
    finally:
        if True in modes:
            frontend.set_setting(page, "Comfy.VueNodes.Enabled", False)
            frontend.wait_ready(page, fe.server.url, frontend.FADE_NODE_TYPES)
    if len(modes) == 1:
        pytest.skip(f"classic mode checked; frontend {'.'.join(map(str, version))} has no stable Vue-nodes mode")
