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
