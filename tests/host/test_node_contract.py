"""The pack's node interface against the committed snapshot tests/node_contract.json.

Saved workflows name nodes by id, connect sockets by input name and output slot, and store widget values by
position (widgets_values); API prompts name inputs. So these changes fail the test:
  - a node id removed or renamed;
  - an input removed or renamed, or its type changed; an optional socket made required;
  - a new required socket (old graphs have nothing connected to it);
  - a widget inserted before or between existing ones, or a seed's control_after_generate added/removed
    (both shift widgets_values);
  - a combo option removed (a saved value may no longer exist);
  - an output removed, reordered or retyped.
Additions pass: new nodes, optional inputs, widgets appended after the existing ones, combo options, outputs
appended at the end. After an intended change, regenerate and commit the snapshot:

    FADE_UPDATE_CONTRACT=1 python -m pytest tests/host/test_node_contract.py
"""
import copy
import json
import os
import warnings
from pathlib import Path

import pytest

import harness

CONTRACT = Path(__file__).resolve().parents[1] / "node_contract.json"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL = "control_after_generate"


def _input_entry(name, spec):
    kind, options = (spec[0], spec[1] if len(spec) > 1 else {}) if isinstance(spec, (list, tuple)) else (spec, {})
    options = options or {}
    entry = {}
    if isinstance(kind, (list, tuple)):                 # V1 combo: the options are the type
        entry["type"], combo = "COMBO", list(kind)
    else:
        entry["type"], combo = str(kind), options.get("options")
    if entry["type"] == "COMBO" and combo is not None:
        entry["options"] = [str(o) for o in combo]
    if entry["type"] in WIDGET_TYPES and not options.get("forceInput"):
        entry["widget"] = True
    # The frontend's rule (frontend 1.27 widgets: INT control = spec value, else the legacy name convention).
    control = options.get(CONTROL)
    if control is None and entry["type"] == "INT":
        control = name in ("seed", "noise_seed")
    if entry.get("widget") and control:
        entry[CONTROL] = True
    return entry


def describe(node_class):
    """The contract-relevant part of a node's /object_info entry."""
    info = node_class.GET_NODE_INFO_V1() if hasattr(node_class, "GET_NODE_INFO_V1") else None
    if info is None:                                    # a V1 node
        info = {"input": node_class.INPUT_TYPES(), "output": list(node_class.RETURN_TYPES),
                "output_name": list(getattr(node_class, "RETURN_NAMES", node_class.RETURN_TYPES)),
                "output_is_list": list(getattr(node_class, "OUTPUT_IS_LIST", [False] * len(node_class.RETURN_TYPES))),
                "display_name": None}
    inputs, widgets = {}, []
    for section in ("required", "optional"):
        specs = info["input"].get(section, {})
        order = info.get("input_order", {}).get(section, list(specs))
        inputs[section] = {}
        for name in order:
            entry = _input_entry(name, specs[name])
            inputs[section][name] = entry
            if entry.get("widget"):
                widgets.append(name)
                if entry.get(CONTROL):
                    widgets.append(f"{name}:{CONTROL}")
    is_list = info.get("output_is_list") or [False] * len(info["output"])
    outputs = [{"name": n, "type": str(t) + ("[]" if lst else "")}
               for n, t, lst in zip(info.get("output_name") or info["output"], info["output"], is_list)]
    return {"display_name": info.get("display_name"), "inputs": inputs, "widgets": widgets, "outputs": outputs}


def incompatibilities(old, new):
    """Human-readable reasons why `new` (node id -> describe()) breaks workflows made against `old`."""
    problems = []
    for node_id, before in old.items():
        after = new.get(node_id)
        if after is None:
            problems.append(f"{node_id}: node removed or renamed (workflows refer to it by id)")
            continue
        old_inputs = {n: (s, e) for s in ("required", "optional") for n, e in before["inputs"].get(s, {}).items()}
        new_inputs = {n: (s, e) for s in ("required", "optional") for n, e in after["inputs"].get(s, {}).items()}
        for name, (section, entry) in old_inputs.items():
            if name not in new_inputs:
                problems.append(f"{node_id}.{name}: input removed or renamed")
                continue
            new_section, new_entry = new_inputs[name]
            if new_entry["type"] != entry["type"]:
                problems.append(f"{node_id}.{name}: type {entry['type']} -> {new_entry['type']}")
            if section == "optional" and new_section == "required" and not new_entry.get("widget"):
                problems.append(f"{node_id}.{name}: optional socket became required")
            lost = [o for o in entry.get("options", []) if o not in new_entry.get("options", entry.get("options"))]
            if lost:
                problems.append(f"{node_id}.{name}: combo options removed: {lost}")
        for name, (section, entry) in new_inputs.items():
            if name not in old_inputs and section == "required" and not entry.get("widget"):
                problems.append(f"{node_id}.{name}: new required socket (old graphs leave it unconnected)")
        if after["widgets"][:len(before["widgets"])] != before["widgets"]:
            problems.append(f"{node_id}: widget order {before['widgets']} -> {after['widgets']} "
                            "(widgets_values are positional; append new widgets at the end)")
        old_types = [o["type"] for o in before["outputs"]]
        new_types = [o["type"] for o in after["outputs"]]
        if new_types[:len(old_types)] != old_types:
            problems.append(f"{node_id}: outputs {old_types} -> {new_types} (links use output slot numbers)")
    return problems


def additions(old, new):
    notes = [f"new node {n}" for n in new if n not in old]
    for node_id in set(old) & set(new):
        if old[node_id] != new[node_id]:
            notes.append(f"{node_id} changed compatibly")
    return notes


def current_contract():
    return {node_id: describe(harness.node_class(node_id)) for node_id in harness.bootstrap().pack_node_ids}


def test_node_interface_is_compatible_with_the_snapshot(comfy):
    current = current_contract()
    assert current, "the pack registered no nodes"
    assert all(n.startswith("FADE_") for n in current), sorted(current)
    if os.environ.get("FADE_UPDATE_CONTRACT", "").strip() not in ("", "0"):
        CONTRACT.write_text(json.dumps({
            "_about": "Node interface snapshot checked by tests/host/test_node_contract.py. Regenerate after an "
                      "intended change: FADE_UPDATE_CONTRACT=1 python -m pytest tests/host/test_node_contract.py",
            "nodes": current}, indent=2, sort_keys=False) + "\n")
        return
    assert CONTRACT.is_file(), f"{CONTRACT} missing; create it with FADE_UPDATE_CONTRACT=1"
    saved = json.loads(CONTRACT.read_text())["nodes"]
    problems = incompatibilities(saved, current)
    assert not problems, "incompatible node interface changes:\n  " + "\n  ".join(problems) + \
        "\n(if intended, regenerate with FADE_UPDATE_CONTRACT=1 and say so in the changelog)"
    notes = additions(saved, current)
    if notes:
        warnings.warn("node contract is out of date (compatible): " + "; ".join(notes) +
                      " -- regenerate with FADE_UPDATE_CONTRACT=1", stacklevel=1)


# The checker itself, on mutations of the real snapshot.
BREAKING = {
    "node removed": lambda c: c.pop("FADE_GaussianLPF3D"),
    "input renamed": lambda c: c["FADE_FreeInit"]["inputs"]["required"].update(
        {"iterations": c["FADE_FreeInit"]["inputs"]["required"].pop("passes")}),
    "input retyped": lambda c: c["FADE_FreeInit"]["inputs"]["required"]["passes"].update(type="FLOAT"),
    "output retyped": lambda c: c["FADE_DDIMInvert"]["outputs"][1].update(type="LATENT"),
    "output removed": lambda c: c["FADE_DDIMInvert"]["outputs"].pop(),
    "widget inserted first": lambda c: c["FADE_GaussianLPF3D"]["widgets"].insert(0, "strength"),
    "combo option removed": lambda c: c["FADE_GaussianLPF3D"]["inputs"]["required"]["filter_type"]["options"].pop(),
    "new required socket": lambda c: c["FADE_FreeInit"]["inputs"]["required"].update(vae={"type": "VAE"}),
    "optional socket now required": lambda c: c["FADE_FreeInit"]["inputs"]["required"].update(
        filter=c["FADE_FreeInit"]["inputs"]["optional"].pop("filter")),
}
COMPATIBLE = {
    "new node": lambda c: c.update(FADE_New={"inputs": {}, "widgets": [], "outputs": []}),
    "new optional socket": lambda c: c["FADE_FreeInit"]["inputs"]["optional"].update(mask={"type": "MASK"}),
    "widget appended": lambda c: (c["FADE_GaussianLPF3D"]["inputs"]["required"].update(
        gain={"type": "FLOAT", "widget": True}), c["FADE_GaussianLPF3D"]["widgets"].append("gain")),
    "combo option added": lambda c: c["FADE_GaussianLPF3D"]["inputs"]["required"]["filter_type"]["options"].append(
        "cosine"),
    "output appended": lambda c: c["FADE_DDIMInvert"]["outputs"].append({"name": "x", "type": "LATENT"}),
    "output renamed": lambda c: c["FADE_DDIMInvert"]["outputs"][0].update(name="initial_noise"),
}


@pytest.mark.parametrize("change", sorted(BREAKING))
def test_checker_flags_breaking_change(change):
    saved = json.loads(CONTRACT.read_text())["nodes"]
    changed = copy.deepcopy(saved)
    BREAKING[change](changed)
    assert incompatibilities(saved, changed), change


@pytest.mark.parametrize("change", sorted(COMPATIBLE))
def test_checker_allows_compatible_change(change):
    saved = json.loads(CONTRACT.read_text())["nodes"]
    changed = copy.deepcopy(saved)
    COMPATIBLE[change](changed)
    assert incompatibilities(saved, changed) == [], change
