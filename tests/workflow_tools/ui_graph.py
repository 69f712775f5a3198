"""UI-format (frontend) workflow graphs: build them from node definitions, and convert them to API prompts.

The frontend serialises a graph as {nodes: [{id, type, inputs: [{name, type, link}], outputs, widgets_values}],
links: [[id, from, from_slot, to, to_slot, type]], ...}; widget values are listed in the node definition's input
order, with an extra value after every input that has control_after_generate. Both directions below follow that
rule and read the definitions from ComfyUI's own node classes (INPUT_TYPES / RETURN_TYPES), so they stay in step
with the nodes. Frontend-only nodes (notes) have no class and are skipped when converting.
"""
from __future__ import annotations

import uuid
from typing import Dict, List

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"   # V3 dynamic combo (v0.8+): its value picks which nested widgets exist
FRONTEND_ONLY = {"Note", "MarkdownNote", "PrimitiveNode", "Reroute"}


def _definition(node_classes, type_name):
    cls = node_classes[type_name]
    inputs = cls.INPUT_TYPES()
    ordered = list(inputs.get("required", {}).items()) + list(inputs.get("optional", {}).items())
    return cls, ordered, {name for name, _ in inputs.get("optional", {}).items()}


def _is_widget(spec) -> bool:
    kind = spec[0]
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _has_upload(spec) -> bool:
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return any(options.get(key) for key in ("image_upload", "video_upload", "audio_upload"))


def _has_control(spec) -> bool:
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return bool(options.get("control_after_generate"))


class UIGraph:
    """Builds a UI-format workflow the way the frontend would save it."""

    def __init__(self, node_classes, frontend_version: str = "1.27.10"):
        self.node_classes = node_classes
        self.nodes: List[dict] = []
        self.links: List[list] = []
        self.groups: List[dict] = []
        self.frontend_version = frontend_version

    def add(self, type_name: str, pos, size=(320, 120), title: str | None = None, widgets: Dict | None = None,
            properties: Dict | None = None, color: str | None = None, mode: int = 0) -> int:
        """mode: 0 runs, 4 is bypassed (the frontend's Ctrl+B)."""
        node_id = len(self.nodes) + 1
        node = {"id": node_id, "type": type_name, "pos": list(pos), "size": list(size), "flags": {}, "order": 0,
                "mode": mode, "inputs": [], "outputs": [], "properties": {"Node name for S&R": type_name}}
        if type_name in FRONTEND_ONLY:
            node["widgets_values"] = [widgets["text"]]
        else:
            cls, ordered, optional = _definition(self.node_classes, type_name)
            values = []
            widgets = dict(widgets or {})
            for name, spec in ordered:
                if _is_widget(spec):
                    default = spec[1].get("default") if len(spec) > 1 and isinstance(spec[1], dict) else None
                    if default is None and isinstance(spec[0], list) and spec[0]:
                        default = spec[0][0]
                    if default is None and spec[0] == "COMBO":
                        default = (spec[1].get("options") or [None])[0]
                    values.append(widgets.pop(name, default))
                    if _has_control(spec):
                        values.append(widgets.pop(f"{name}:control", "fixed"))
                    if _has_upload(spec):
                        values.append("image")        # the upload button's (unused) widget value
                else:
                    entry = {"name": name, "type": spec[0], "link": None}
                    if name in optional:
                        entry["shape"] = 7            # the frontend's marker for optional sockets
                    node["inputs"].append(entry)
            if widgets:
                raise KeyError(f"{type_name} has no widgets {sorted(widgets)}")
            node["widgets_values"] = values
            names = getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES
            node["outputs"] = [{"name": n, "type": t, "links": []} for n, t in zip(names, cls.RETURN_TYPES)]
        if title:
            node["title"] = title
        if properties:
            node["properties"].update(properties)
        if color:
            node["color"], node["bgcolor"] = color
        self.nodes.append(node)
        return node_id

    def _node(self, node_id):
        return self.nodes[node_id - 1]

    def link(self, source: int, output: str, target: int, input_name: str):
        src, dst = self._node(source), self._node(target)
        out_slot = next(i for i, o in enumerate(src["outputs"]) if o["name"] == output)
        in_slot = next(i for i, e in enumerate(dst["inputs"]) if e["name"] == input_name)
        link_id = len(self.links) + 1
        kind = src["outputs"][out_slot]["type"]
        self.links.append([link_id, source, out_slot, target, in_slot, kind])
        src["outputs"][out_slot]["links"].append(link_id)
        src["outputs"][out_slot]["slot_index"] = out_slot
        dst["inputs"][in_slot]["link"] = link_id

    def group(self, title: str, bounding, color="#3f789e"):
        self.groups.append({"id": len(self.groups) + 1, "title": title, "bounding": list(bounding), "color": color,
                            "font_size": 24, "flags": {}})

    def _execution_order(self):
        incoming = {n["id"]: {l[1] for l in self.links if l[3] == n["id"]} for n in self.nodes}
        order, placed = [], set()
        while len(order) < len(self.nodes):
            ready = [i for i in incoming if i not in placed and incoming[i] <= placed]
            if not ready:
                raise ValueError("the graph has a cycle")
            order.extend(sorted(ready))
            placed.update(ready)
        for position, node_id in enumerate(order):
            self._node(node_id)["order"] = position

    def to_json(self) -> dict:
        self._execution_order()
        return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, "fade-freeinit/" + "/".join(n["type"] for n in self.nodes))),
                "revision": 0, "last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": self.nodes, "links": self.links, "groups": self.groups, "config": {},
                "extra": {"ds": {"scale": 0.6, "offset": [80, 80]}, "frontendVersion": self.frontend_version},
                "version": 0.4}


def _default(spec):
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "default" in options:
        return options["default"]
    choices = spec[0] if isinstance(spec[0], list) else options.get("options", [])
    first = choices[0] if choices else None
    return first["key"] if isinstance(first, dict) else first


def _take_widget(name, spec, values, inputs, prefix):
    """Consume the saved values of one input (and, for a dynamic combo, of the chosen option's widgets, keyed
    'parent.child' as V3 expects). A workflow saved on an older host lacks widgets newer hosts added; the
    frontend gives those their defaults, and so does this. Hidden inputs have no widget."""
    options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if options.get("hidden") or not (_is_widget(spec) or spec[0] == DYNAMIC_COMBO):
        return
    value = values.pop(0) if values else _default(spec)
    inputs[prefix + name] = value
    if _has_control(spec) and values:
        values.pop(0)
    if _has_upload(spec) and values:
        values.pop(0)
    if spec[0] == DYNAMIC_COMBO:
        chosen = next((o for o in options.get("options", []) if o.get("key") == value), None)
        nested = (chosen or {}).get("inputs", {})
        for sub_name, sub_spec in list(nested.get("required", {}).items()) + list(nested.get("optional", {}).items()):
            _take_widget(sub_name, sub_spec, values, inputs, f"{prefix}{name}.")


def ui_to_api(workflow: dict, node_classes) -> dict:
    """API prompt {id: {class_type, inputs}} from a UI-format workflow (what the frontend's graphToPrompt does for
    these graphs: links become [source_id, slot], widget values are matched to widget inputs in order)."""
    links = {l[0]: l for l in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in FRONTEND_ONLY or node.get("mode", 0) in (2, 4):   # notes; muted / bypassed nodes
            continue
        _, ordered, _ = _definition(node_classes, node["type"])
        inputs = {}
        values = list(node.get("widgets_values", []))
        for name, spec in ordered:
            _take_widget(name, spec, values, inputs, "")
        for entry in node.get("inputs", []):
            if entry.get("link") is not None:
                link = links[entry["link"]]
                inputs[entry["name"]] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
