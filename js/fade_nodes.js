// Canvas previews for the FADE & FreeInit nodes, drawn in the browser from the widget values (no server round trip).
//
// - 3D Low-Pass Filter: spatial and temporal gain profiles with the cut-offs marked, the bins of the reference latent
//   grid as dots, and the kept fraction / white-noise energy fraction on that grid (formulas in lpf_math.js, the
//   same as nodes/algo/spectral.py; tests/core/test_js_filter_parity.py keeps them equal).
// - Sketch-Block Spectrum Guide: a bar showing which share of the sampling steps is guided.
// - Widgets that only some settings use are hidden otherwise (WIDGET_RULES); renoise_sigma 0 reads "auto".
//
// Draw code never throws: a failing preview must not break the canvas loop for the whole graph.
import { app } from "../../scripts/app.js";
import * as lpf from "./lpf_math.js";

// Namespaced to the pack (comfy-test's lint; extension names are global in the frontend).
export const EXTENSION_NAME = "fade-freeinit.Previews";
const LPF_NODE = "FADE_GaussianLPF3D";
const GUIDE_NODE = "FADE_SketchSpectrumGuide";
const SAMPLER_NODE = "FADE_ModulatedDDIMSampler";
const INVERT_NODE = "FADE_DDIMInvert";
const RENOISE_NODES = ["FADE_FreeInit", "FADE_FreeInitNoiseReinit"];
const LPF_WIDGETS = ["filter_type", "spatial_cutoff", "temporal_cutoff", "butterworth_order"];

// widget -> when it applies. A widget that does nothing under the current settings is hidden (its value is kept,
// saved and sent as before; node ids and widget order do not change).
const WIDGET_RULES = {
  [LPF_NODE]: { butterworth_order: (node) => widgetValue(node, "filter_type") === "butterworth" },
  [GUIDE_NODE]: {
    ratio_min: (node) => widgetValue(node, "normalisation") === "cfg-relative",
    ratio_max: (node) => widgetValue(node, "normalisation") === "cfg-relative",
  },
  [SAMPLER_NODE]: { blend_fraction: (node) => isInputLinked(node, "mask") },
  [INVERT_NODE]: { boundary: (node) => isInputLinked(node, "low_noise_model") },
};

const PREVIEW_HEIGHT = 168;
const GUIDE_HEIGHT = 30;
const COLORS = {
  panel: "#1a1a1a",
  border: "#555",
  grid: "#333",
  text: "#ddd",
  dim: "#999",
  spatial: "#4fb0ff",
  temporal: "#ffaa40",
  cutoff: "#e0e0e0",
  error: "#ff7070",
  guided: "#4fb0ff",
};
// Wan 2.1 / HunyuanVideo VAE: 4 frames and 8x8 pixels per latent cell (frame 0 alone).
const VAE_TIME = 4;
const VAE_SPACE = 8;

let warnedOnce = false;
function reportDrawError(where, error) {
  if (warnedOnce) return;
  warnedOnce = true;
  console.warn(`[FADE] ${where} preview failed; drawing a placeholder instead`, error);
}

function widgetValue(node, name, fallback) {
  const widget = node.widgets?.find((w) => w.name === name);
  return widget === undefined || widget.value === undefined ? fallback : widget.value;
}

function isInputLinked(node, name) {
  return (node.inputs ?? []).some((input) => input?.name === name && input.link != null);
}

// A widget converted to (or driven by) a link shows a stale value; say so instead of pretending.
function isLinked(node, name) {
  return (node.inputs ?? []).some((input) => input?.widget?.name === name && input.link != null);
}

function redrawOnChange(node, names) {
  for (const widget of node.widgets ?? []) {
    if (!names.includes(widget.name)) continue;
    const original = widget.callback;
    widget.callback = function () {
      const result = original?.apply(this, arguments);
      node.setDirtyCanvas?.(true, false);
      return result;
    };
  }
}

function addCanvasWidget(node, name, height, draw) {
  const widget = {
    name,
    type: name,                     // unknown type: litegraph keeps the object and calls its draw()
    value: null,
    serialize: false,               // not in widgets_values...
    options: { serialize: false },  // ...nor in the API prompt (graphToPrompt)
    draw(ctx, drawNode, width, y, _h, lowQuality) {
      ctx.save();
      try {
        draw(ctx, drawNode, width, y, lowQuality);
      } catch (error) {
        reportDrawError(name, error);
      } finally {
        ctx.restore();
      }
    },
    computeSize(width) {
      return [width ?? node.size?.[0] ?? 300, height];
    },
  };
  node.addCustomWidget(widget);
  return widget;
}

// ------------------------------------------------------------------------------------------------ LPF preview

function currentFilter(node) {
  return lpf.makeFilter(
    widgetValue(node, "filter_type", "gaussian"),
    widgetValue(node, "spatial_cutoff", 0.25),
    widgetValue(node, "temporal_cutoff", 0.25),
    widgetValue(node, "butterworth_order", 4),
  );
}

function numberWidget(node, name) {
  const value = Number(widgetValue(node, name, NaN));
  return Number.isFinite(value) && value > 0 ? value : null;
}

// The latent grid this graph makes: the first node with width, height and length widgets (an empty video latent),
// else a width/height node (the source resize) and a length node (the frame cut). Null when the graph has none.
export function graphLatentGrid(graph) {
  const nodes = graph?.nodes ?? graph?._nodes ?? [];
  let size = null;
  let frames = null;
  for (const n of nodes) {
    const w = numberWidget(n, "width");
    const h = numberWidget(n, "height");
    const len = numberWidget(n, "length");
    if (w && h && len) return { width: w, height: h, frames: len };
    if (w && h && !size) size = { width: w, height: h };
    if (len && !frames) frames = len;
  }
  return size && frames ? { ...size, frames } : null;
}

function previewGrid(node) {
  // node.graph only: a node drawn outside a graph (search preview) must not touch app.graph before it exists.
  const found = node.graph ? graphLatentGrid(node.graph) : null;
  if (found) {
    const t = Math.floor((found.frames - 1) / VAE_TIME) + 1;
    const h = Math.max(1, Math.floor(found.height / VAE_SPACE));
    const w = Math.max(1, Math.floor(found.width / VAE_SPACE));
    return { grid: [t, h, w], label: `${found.height}\u00d7${found.width}, ${found.frames} frames, from this graph` };
  }
  return { grid: [...lpf.REFERENCE_GRID], label: "Wan 2.1, 480\u00d7832, 81 frames" };
}

// Kept fractions take up to ~131k bin evaluations; recompute only when a parameter or the grid changes.
function cachedFractions(node, filter, grid) {
  const key = `${filter.kind}|${filter.spatialCutoff}|${filter.temporalCutoff}|${filter.order}|${grid.join("x")}`;
  if (node.fadeLpfCache?.key !== key) {
    node.fadeLpfCache = { key, ...lpf.fractions(filter, grid) };
  }
  return node.fadeLpfCache;
}

function percent(x) {
  if (x === 0) return "0%";
  if (x < 0.001) return "<0.1%";
  return `${(100 * x).toFixed(x < 0.1 ? 2 : 1)}%`;
}

function drawProfile(ctx, box, gain, cutoff, bins, color, title, cutoffLabel, lowQuality) {
  const { x, y, w, h } = box;
  ctx.fillStyle = COLORS.panel;
  ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = COLORS.border;
  ctx.lineWidth = 1;
  ctx.strokeRect(x + 0.5, y + 0.5, w - 1, h - 1);

  const pad = 4;
  const px = (f) => x + pad + f * (w - 2 * pad);
  const py = (g) => y + h - pad - g * (h - 2 * pad - 12);   // 12 px kept free for the title
  if (!lowQuality) {
    ctx.strokeStyle = COLORS.grid;
    ctx.beginPath();
    ctx.moveTo(px(0), py(0.5));
    ctx.lineTo(px(1), py(0.5));
    ctx.stroke();
  }

  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  ctx.beginPath();
  const samples = Math.max(2, Math.round(w - 2 * pad));
  for (let i = 0; i <= samples; i++) {
    const f = i / samples;
    const g = gain(f);
    if (i === 0) ctx.moveTo(px(f), py(g));
    else ctx.lineTo(px(f), py(g));
  }
  ctx.stroke();

  if (lowQuality) return;
  // Where the reference grid actually samples this profile.
  ctx.fillStyle = color;
  for (const f of bins) {
    ctx.beginPath();
    ctx.arc(px(f), py(gain(f)), 1.6, 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.strokeStyle = COLORS.cutoff;
  ctx.lineWidth = 1;
  ctx.setLineDash([3, 3]);
  ctx.beginPath();
  ctx.moveTo(px(cutoff) + 0.5, y + 14);
  ctx.lineTo(px(cutoff) + 0.5, y + h - pad);
  ctx.stroke();
  ctx.setLineDash([]);

  ctx.font = "10px sans-serif";
  ctx.textBaseline = "top";
  ctx.fillStyle = COLORS.text;
  ctx.textAlign = "left";
  ctx.fillText(title, x + pad, y + 2);
  ctx.fillStyle = COLORS.dim;
  ctx.textAlign = cutoff > 0.6 ? "right" : "left";
  ctx.fillText(cutoffLabel, px(cutoff) + (cutoff > 0.6 ? -3 : 3), y + 15);
}

function drawLpfPreview(ctx, node, width, y, lowQuality) {
  const margin = 10;
  const inner = Math.max(40, width - 2 * margin);
  const plotH = PREVIEW_HEIGHT - 44;
  let filter;
  try {
    filter = currentFilter(node);
  } catch (error) {
    ctx.fillStyle = COLORS.error;
    ctx.font = "11px sans-serif";
    ctx.textBaseline = "top";
    ctx.fillText(String(error.message ?? error), margin, y + 6, inner);
    node.fadeLpfPreview = { error: String(error.message ?? error), draws: (node.fadeLpfPreview?.draws ?? 0) + 1 };
    return;
  }
  const gap = 8;
  const panelW = (inner - gap) / 2;
  const { spatialCutoff: ds, temporalCutoff: dt } = filter;
  const { grid, label } = previewGrid(node);
  const [gridT, gridH, gridW] = grid;
  drawProfile(ctx, { x: margin, y, w: panelW, h: plotH }, (f) => lpf.spatialGain(filter, f), ds,
    lpf.binFrequencies(gridH), COLORS.spatial, "spatial (t = 0)", `d_s ${ds}`, lowQuality);
  drawProfile(ctx, { x: margin + panelW + gap, y, w: panelW, h: plotH }, (f) => lpf.temporalGain(filter, f), dt,
    lpf.binFrequencies(gridT), COLORS.temporal, "temporal (xy = 0)", `d_t ${dt}`, lowQuality);

  const { kept, energy } = cachedFractions(node, filter, grid);
  const linked = LPF_WIDGETS.some((name) => isLinked(node, name));
  const gridText = `on a ${gridT}\u00d7${gridH}\u00d7${gridW} latent (${label})`;
  // Read back by tests/browser (and handy when debugging from the console).
  node.fadeLpfPreview = { kept, energy, filter, linked, grid, gridText, draws: (node.fadeLpfPreview?.draws ?? 0) + 1 };
  if (lowQuality) return;

  ctx.textBaseline = "top";
  ctx.textAlign = "left";
  ctx.font = "10px sans-serif";
  ctx.fillStyle = COLORS.dim;
  ctx.fillText("0", margin + 3, y + plotH + 1);
  ctx.textAlign = "right";
  ctx.fillText("Nyquist", margin + inner - 3, y + plotH + 1);
  ctx.textAlign = "left";
  ctx.font = "11px sans-serif";
  ctx.fillStyle = COLORS.text;
  ctx.fillText(`keeps ${percent(kept)} of the spectrum, ${percent(energy)} of the noise energy`, margin,
    y + plotH + 14, inner);
  ctx.fillStyle = COLORS.dim;
  ctx.fillText(linked ? "a cut-off comes from a link: preview shows the widget values" : gridText, margin,
    y + plotH + 28, inner);
}

// ------------------------------------------------------------------------------------------------ guide bar

function drawGuideBar(ctx, node, width, y, lowQuality) {
  const margin = 15;
  const w = Math.max(20, width - 2 * margin);
  const raw = Number(widgetValue(node, "guided_fraction", 0.6));
  const fraction = Number.isFinite(raw) ? Math.min(1, Math.max(0, raw)) : 0;
  const barY = y + 4;
  const barH = GUIDE_HEIGHT - 10;
  ctx.fillStyle = COLORS.panel;
  ctx.fillRect(margin, barY, w, barH);
  ctx.save();
  ctx.globalAlpha *= 0.55;
  ctx.fillStyle = COLORS.guided;
  ctx.fillRect(margin, barY, w * fraction, barH);
  ctx.restore();
  ctx.strokeStyle = COLORS.border;
  ctx.strokeRect(margin + 0.5, barY + 0.5, w - 1, barH - 1);
  if (lowQuality) return;
  let label;
  if (fraction <= 0) label = "guided: no steps (guide off)";
  else if (fraction >= 1) label = "guided: all steps";
  else label = `guided: first ${Math.round(100 * fraction)}% of steps, the rest unguided`;
  if (isLinked(node, "guided_fraction")) label = "guided fraction comes from a link";
  ctx.fillStyle = COLORS.text;
  ctx.font = "11px sans-serif";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.fillText(label, margin + w / 2, barY + barH / 2, w - 6);
}

// ------------------------------------------------------------------------------------------------ conditional widgets

// Classic canvas reads widget.hidden; Vue nodes read widget.options.hidden (frontend 1.27 through 1.49 at least).
function setWidgetHidden(widget, hidden) {
  if (!!widget.hidden === hidden && !!widget.options?.hidden === hidden) return false;
  widget.hidden = hidden;
  if (widget.options) widget.options.hidden = hidden;
  else widget.options = { hidden };
  return true;
}

function applyWidgetRules(node) {
  const rules = WIDGET_RULES[node.comfyClass ?? node.type];
  if (!rules) return;
  let changed = false;
  for (const widget of node.widgets ?? []) {
    const applies = rules[widget.name];
    // A widget turned into a linked input stays as it is: its socket is what the user sees.
    if (applies && !isLinked(node, widget.name)) changed = setWidgetHidden(widget, !applies(node)) || changed;
  }
  if (!changed) return;
  // Fit the height to the visible widgets (classic canvas; Vue nodes size themselves from the DOM).
  const size = node.computeSize?.();
  if (size && node.size) node.setSize?.([Math.max(node.size[0], size[0]), size[1]]);
  node.setDirtyCanvas?.(true, true);
  node.graph?.setDirtyCanvas?.(true, true);
}

function watchWidgetRules(node) {
  const rules = WIDGET_RULES[node.comfyClass ?? node.type];
  if (!rules) return;
  const controlling = ["filter_type", "normalisation"];
  for (const widget of node.widgets ?? []) {
    if (!controlling.includes(widget.name)) continue;
    const original = widget.callback;
    widget.callback = function () {
      const result = original?.apply(this, arguments);
      applyWidgetRules(node);
      return result;
    };
  }
  applyWidgetRules(node);
}

// renoise_sigma: 0 means "the model's default level"; the number widget shows "auto" there instead of 0.000.
function showAutoAtZero(node, name) {
  const widget = node.widgets?.find((w) => w.name === name);
  if (!widget) return;
  const proto = Object.getPrototypeOf(widget);
  const descriptor = proto && Object.getOwnPropertyDescriptor(proto, "_displayValue");
  if (!descriptor?.get) return;            // a frontend without this hook: the label ("0 = auto") still says it
  Object.defineProperty(widget, "_displayValue", {
    configurable: true,
    get() {
      if (!this.computedDisabled && Number(this.value) === 0) return "auto";
      return descriptor.get.call(this);
    },
  });
}

// ------------------------------------------------------------------------------------------------ registration

function extendOnNodeCreated(nodeType, setup) {
  const original = nodeType.prototype.onNodeCreated;
  nodeType.prototype.onNodeCreated = function () {
    const result = original?.apply(this, arguments);
    try {
      setup(this);
    } catch (error) {
      console.warn("[FADE] could not set up the node's widgets", error);
    }
    return result;
  };
}

// Loaded workflows set the widget values after onNodeCreated; links change which rules apply.
function reapplyRulesOn(nodeType, method) {
  const original = nodeType.prototype[method];
  nodeType.prototype[method] = function () {
    const result = original?.apply(this, arguments);
    try {
      applyWidgetRules(this);
    } catch (error) {
      console.warn("[FADE] could not update the node's widgets", error);
    }
    return result;
  };
}

app.registerExtension({
  name: EXTENSION_NAME,
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const name = nodeData?.name;
    if (name === LPF_NODE) {
      extendOnNodeCreated(nodeType, (node) => {
        addCanvasWidget(node, "fade_lpf_preview", PREVIEW_HEIGHT, drawLpfPreview);
        redrawOnChange(node, LPF_WIDGETS);
        node.setSize?.([Math.max(node.size?.[0] ?? 0, 320), node.computeSize?.()[1] ?? node.size?.[1]]);
      });
    } else if (name === GUIDE_NODE) {
      extendOnNodeCreated(nodeType, (node) => {
        addCanvasWidget(node, "fade_guide_steps", GUIDE_HEIGHT, drawGuideBar);
        redrawOnChange(node, ["guided_fraction"]);
      });
    } else if (RENOISE_NODES.includes(name)) {
      extendOnNodeCreated(nodeType, (node) => showAutoAtZero(node, "renoise_sigma"));
    }
    if (WIDGET_RULES[name]) {
      extendOnNodeCreated(nodeType, watchWidgetRules);
      reapplyRulesOn(nodeType, "onConfigure");
      reapplyRulesOn(nodeType, "onConnectionsChange");
    }
  },
});
