"""Page-side steps of the browser tier: each function runs JavaScript in the ComfyUI frontend through cdp.Page."""
import json
import os

FADE_NODE_TYPES = ("FADE_GaussianLPF3D", "FADE_FreeInitNoiseReinit", "FADE_FreeInit", "FADE_DDIMInvert",
                   "FADE_SketchSpectrumGuide", "FADE_ModulatedDDIMSampler")
LPF_NODE = "FADE_GaussianLPF3D"
GUIDE_NODE = "FADE_SketchSpectrumGuide"
EXTENSION_NAME = "fade-freeinit.Previews"
# (r, g, b) of the two profile curves in js/fade_nodes.js (COLORS.spatial / COLORS.temporal).
SPATIAL_RGB = (0x4F, 0xB0, 0xFF)
TEMPORAL_RGB = (0xFF, 0xAA, 0x40)

# Frontend noise that has nothing to do with the pack, each with its cause. Matched as substrings of cdp errors.
KNOWN_FRONTEND_NOISE = {
    # index.html links /user.css unconditionally; ComfyUI serves user CSS only at /api/userdata/user.css.
    "404 (Not Found) http://127.0.0.1:{port}/user.css": "index.html <link href=user.css>",
    # Frontend 1.49 reads app.rootGraph in a settings watcher while it starts (stack in settingStore-*.js).
    "ComfyApp graph accessed before initialization (at get rootGraph@settingStore-": "frontend start-up watcher",
    # Nobody serves a favicon.
    "404 (Not Found) http://127.0.0.1:{port}/favicon.ico": "no favicon",
}


def write_thumbnails():
    """FADE_WRITE_THUMBNAILS=1: (re)write <workflow>.jpg next to each shipped workflow."""
    return os.environ.get("FADE_WRITE_THUMBNAILS", "").strip().lower() not in ("", "0", "no", "off", "false")


def wait_ready(page, url, node_types, timeout=120.0):
    """Open the frontend and wait until the graph canvas exists and our node types are registered."""
    page.send("Emulation.setDeviceMetricsOverride",
              {"width": 1600, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
    page.navigate(url)
    types = json.dumps(list(node_types))
    page.wait_for(
        # app.canvas.graph, not app.graph: newer frontends log a console error for app.graph before start-up ends.
        "!!(window.app && app.canvas && app.canvas.graph && window.LiteGraph && "
        f"{types}.every((t) => LiteGraph.registered_node_types[t]))",
        timeout=timeout, what="the ComfyUI frontend with the FADE node types")
    # A probe extension: afterConfigureGraph receives the missing node types of every loaded graph.
    page.evaluate("""(() => {
        window.__fadeMissing = null;
        app.registerExtension({
          name: "FADE.BrowserTest.Probe",
          afterConfigureGraph(missing) {
            window.__fadeMissing = (missing ?? []).map((m) => (typeof m === "string" ? m : m?.type ?? String(m)));
          },
        });
        return true;
    })()""")


def registered_extensions(page):
    return page.evaluate("(app.extensions ?? app.extensionManager?.extensions ?? []).map((e) => e.name)")


def load_template(page, pack, name):
    """Load a workflow the way the template browser does (fetch from the pack's route, then loadGraphData)."""
    return page.call("""async (pack, name) => {
        const response = await fetch(app.api.apiURL(`/workflow_templates/${pack}/${name}.json`));
        if (!response.ok) throw new Error(`template ${pack}/${name}: HTTP ${response.status}`);
        const json = await response.json();
        window.__fadeMissing = null;
        await app.loadGraphData(json, true, true, name);
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        return {
          missing: window.__fadeMissing,
          nodes: app.graph.nodes.map((n) => ({
            id: n.id, type: n.type, registered: !!LiteGraph.registered_node_types[n.type],
            has_errors: !!n.has_errors,
          })),
        };
    }""", pack, name)


# Puts a node at a fixed screen position at scale 1, redraws, and returns colour counts of one widget's area.
_INSPECT_WIDGET = """async (nodeId, widgetName, colours, changes) => {
    const node = app.graph.getNodeById(nodeId);
    if (!node) throw new Error(`no node ${nodeId}`);
    const widget = node.widgets?.find((w) => w.name === widgetName);
    if (!widget) throw new Error(`node ${nodeId} (${node.type}) has no widget ${widgetName}`);
    const canvas = app.canvas;
    const ctx = canvas.canvas.getContext("2d");
    const dpr = window.devicePixelRatio || 1;
    const left = 40, top = 80;
    canvas.ds.scale = 1;
    canvas.ds.offset[0] = left - node.pos[0];
    canvas.ds.offset[1] = top - node.pos[1];
    const snap = () => {
      canvas.setDirty(true, true);
      canvas.draw(true, true);
      const x = left, y = top + widget.y, w = node.size[0], h = widget.computedHeight ?? widget.computeSize()[1];
      const data = ctx.getImageData(Math.round(x * dpr), Math.round(y * dpr), Math.round(w * dpr),
                                    Math.round(h * dpr)).data;
      const counts = colours.map(() => 0);
      for (let i = 0; i < data.length; i += 4) {
        colours.forEach(([r, g, b], k) => {
          const near = Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40 && Math.abs(data[i + 2] - b) < 40;
          if (near) counts[k]++;
        });
      }
      return { data, counts, rect: [x, y, w, h], state: JSON.parse(JSON.stringify(node.fadeLpfPreview ?? null)) };
    };
    const first = snap();
    const result = { counts: first.counts, rect: first.rect, state: first.state, changes: [] };
    for (const [name, value, viaCallback = true] of changes) {
      const w = node.widgets.find((x) => x.name === name);
      if (!w) throw new Error(`node ${nodeId} has no widget ${name}`);
      const old = w.value;
      w.value = value;
      if (viaCallback) w.callback?.(value, canvas, node);    // the UI path (number widgets clamp there)
      const after = snap();
      let differing = 0;
      for (let i = 0; i < first.data.length; i += 4) {
        if (first.data[i] !== after.data[i] || first.data[i + 1] !== after.data[i + 1] ||
            first.data[i + 2] !== after.data[i + 2]) differing++;
      }
      w.value = old;
      w.callback?.(old, canvas, node);
      result.changes.push({ name, value, differing, counts: after.counts, state: after.state });
    }
    snap();
    return result;
}"""


def inspect_widget(page, node_id, widget_name, colours=(SPATIAL_RGB, TEMPORAL_RGB), changes=()):
    """Pixel counts near `colours` inside a canvas widget, and how many pixels change per widget change.

    changes: (widget name, value[, via_callback=True]); each is applied alone, measured, then undone.
    """
    return page.call(_INSPECT_WIDGET, node_id, widget_name, [list(c) for c in colours],
                     [list(c) for c in changes])


def nodes_of_type(page, node_type):
    return page.call("(t) => app.graph.nodes.filter((n) => n.type === t).map((n) => n.id)", node_type)


def frame_graph(page):
    """Hide the UI chrome and fit the whole graph in the viewport; returns the canvas rect for a screenshot."""
    return page.evaluate("""(async () => {
        const manager = app.extensionManager;
        if (manager && "focusMode" in manager) manager.focusMode = true;    // no menus or side bars
        if (!document.getElementById("fade-thumbnail-style")) {              // ...nor focus mode's exit button
          const style = document.createElement("style");
          style.id = "fade-thumbnail-style";
          style.textContent = ".comfy-menu-hamburger { display: none !important; }";
          document.head.appendChild(style);
        }
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        const canvas = app.canvas;
        const el = canvas.canvas;
        const W = el.clientWidth, H = el.clientHeight;
        const titleH = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
        let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
        for (const n of app.graph.nodes) {
          x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - titleH);
          x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
        }
        for (const g of app.graph.groups ?? []) {
          x0 = Math.min(x0, g.pos[0]); y0 = Math.min(y0, g.pos[1]);
          x1 = Math.max(x1, g.pos[0] + g.size[0]); y1 = Math.max(y1, g.pos[1] + g.size[1]);
        }
        const margin = 30;
        const scale = Math.min(1.25, W / (x1 - x0 + 2 * margin), H / (y1 - y0 + 2 * margin));
        canvas.ds.scale = scale;
        canvas.ds.offset[0] = (W / scale - (x1 - x0)) / 2 - x0;
        canvas.ds.offset[1] = (H / scale - (y1 - y0)) / 2 - y0;
        canvas.deselectAll?.();
        canvas.setDirty(true, true);
        canvas.draw(true, true);
        // DOM widgets (prompt text areas, notes) follow the canvas on the next frames.
        await new Promise((r) => setTimeout(r, 150));
        await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
        const rect = el.getBoundingClientRect();
        return { x: rect.x, y: rect.y, width: rect.width, height: rect.height, scale };
    })()""")


def graph_to_prompt(page):
    """The frontend's own UI -> API conversion (what the Run button posts)."""
    return page.evaluate("app.graphToPrompt().then((p) => p.output)")


def frontend_version(page):
    """The frontend's version as (major, minor, patch), from what it writes into a saved workflow."""
    text = page.evaluate("app.graphToPrompt().then((p) => p.workflow?.extra?.frontendVersion ?? '0.0.0')")
    return tuple(int(part) for part in str(text).split("-")[0].split(".")[:3])


def set_setting(page, setting_id, value):
    page.call("async (id, value) => { await app.extensionManager.setting.set(id, value); }", setting_id, value)


def widget_states(page, node_id):
    """{widget name: {hidden, label, display}} of one node (display: what a classic number widget draws)."""
    return page.call("""(id) => {
        const node = app.graph.getNodeById(id);
        return Object.fromEntries((node.widgets ?? []).map((w) => [w.name, {
          hidden: !!w.hidden, optionsHidden: !!w.options?.hidden, visible: node.isWidgetVisible?.(w) ?? !w.hidden,
          label: w.label ?? null, display: typeof w._displayValue === "string" ? w._displayValue : null,
          value: w.value,
        }]));
    }""", node_id)


def set_widget(page, node_id, name, value):
    """Set a widget the way the UI does (value, then its callback)."""
    page.call("""(id, name, value) => {
        const node = app.graph.getNodeById(id);
        const w = node.widgets.find((x) => x.name === name);
        w.value = value;
        w.callback?.(value, app.canvas, node);
        app.canvas.setDirty(true, true);
        app.canvas.draw(true, true);
    }""", node_id, name, value)


def group_nodes(page, title_prefix):
    """Ids and modes of the nodes the frontend counts as inside the group (what its group menu acts on)."""
    return page.call("""(prefix) => {
        const group = app.graph.groups.find((g) => g.title.startsWith(prefix));
        if (!group) return null;
        group.recomputeInsideNodes();
        return group.nodes.map((n) => ({ id: n.id, type: n.type, mode: n.mode }));
    }""", title_prefix)


def set_group_mode(page, title_prefix, mode):
    """What the group's context menu does ("Set Group Nodes to Always" = 0, "Bypass Group Nodes" = 4)."""
    return page.call("""(prefix, mode) => {
        const group = app.graph.groups.find((g) => g.title.startsWith(prefix));
        group.recomputeInsideNodes();
        for (const node of group.nodes) node.mode = mode;
        app.graph.change?.();
        return group.nodes.length;
    }""", title_prefix, mode)


def node_overlaps(page, vue=False):
    """Pairs of nodes whose drawn boxes (title included) overlap by more than 4 px each way. vue=True measures the
    Vue-nodes DOM elements instead of the canvas boxes."""
    return page.call("""(vue) => {
        const titleH = LiteGraph.NODE_TITLE_HEIGHT ?? 30;
        const scale = app.canvas.ds.scale;
        const boxes = app.graph.nodes.map((n) => {
          if (vue) {
            const el = document.querySelector(`[data-node-id="${n.id}"]`);
            if (!el) return { id: n.id, missing: true };
            const r = el.getBoundingClientRect();
            return { id: n.id, x: r.x / scale, y: r.y / scale, w: r.width / scale, h: r.height / scale };
          }
          return { id: n.id, x: n.pos[0], y: n.pos[1] - titleH, w: n.size[0], h: n.size[1] + titleH };
        });
        const missing = boxes.filter((b) => b.missing).map((b) => b.id);
        const pairs = [];
        for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
          const a = boxes[i], b = boxes[j];
          if (a.missing || b.missing) continue;
          const dx = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
          const dy = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
          if (dx > 4 && dy > 4) pairs.push([a.id, b.id, Math.round(dx), Math.round(dy)]);
        }
        return { pairs, missing };
    }""", vue)
