// The 3-D low-pass filter formulas of nodes/algo/spectral.py, for the in-node frequency-response preview.
//
// Pure functions only (no DOM, no ComfyUI imports), so tests/core/test_js_filter_parity.py can load this file in
// node and compare it with the Python core. The frontend imports every .js under js/ as an extension module; a
// module that only exports is harmless there.
//
// The Python masks are float32 tensors, and the ideal/box masks are thresholds, so a bin exactly on the cut-off can
// flip with the rounding. The grid functions therefore repeat torch's float32 arithmetic step by step with
// Math.fround (each +, *, / of two float32 values rounded once from double is the correctly rounded float32 result).

export const FILTER_TYPES = Object.freeze(["gaussian", "butterworth", "ideal", "box"]);

// Latent grid the kept fractions are reported on: Wan 2.1 at 480x832, 81 frames -> (T, H, W) = (21, 60, 104).
export const REFERENCE_GRID = Object.freeze([21, 60, 104]);

const f32 = Math.fround;

/** Validated filter parameters; throws an Error with the Python core's wording on bad values. */
export function makeFilter(kind = "gaussian", spatialCutoff = 0.25, temporalCutoff = 0.25, order = 4) {
  if (!FILTER_TYPES.includes(kind)) {
    throw new Error(`filter type ${JSON.stringify(kind)} is not one of ${FILTER_TYPES.join(", ")}`);
  }
  const ds = Number(spatialCutoff);
  const dt = Number(temporalCutoff);
  for (const [name, value] of [["spatial_cutoff", ds], ["temporal_cutoff", dt]]) {
    if (!(value >= 0 && value <= 1)) throw new Error(`${name} must lie in [0, 1] (1 = Nyquist), got ${value}`);
  }
  const n = Math.trunc(Number(order));
  if (!(n >= 1)) throw new Error(`butterworth order must be >= 1, got ${order}`);
  return Object.freeze({ kind, spatialCutoff: ds, temporalCutoff: dt, order: n });
}

/** Normalised frequency 2*f (1 = Nyquist) of each FFT bin, fftfreq order, as torch computes it in float32. */
export function axisFrequencies(n) {
  const out = new Float32Array(n);
  const step = f32(1 / n);                      // torch: arange(n) (wrapped at (n+1)/2) * (1/n)
  for (let i = 0; i < n; i++) {
    const k = i < Math.floor((n + 1) / 2) ? i : i - n;
    out[i] = 2 * f32(k * step);                 // doubling is exact
  }
  return out;
}

// Constants of one filter, pre-rounded the way torch rounds Python scalars against float32 tensors.
function constants(filter) {
  const ds = filter.spatialCutoff;
  const dt = filter.temporalCutoff;
  return {
    zero: ds <= 0 || dt <= 0,
    ratio: dt > 0 ? f32(ds / dt) : 0,          // ds / dt * f_t
    ds: f32(ds),
    dt: f32(dt),
    ds2: f32(ds * ds),                          // d2 <= ds**2, d2 / ds**2
    twoDs2: f32(2 * ds * ds),                   // -d2 / (2 ds**2)
  };
}

// Gain of one bin from its normalised frequencies (float32 values), using precomputed constants.
function binGain(filter, c, ft, fh, fw) {
  if (c.zero) return 0;
  if (filter.kind === "box") {
    return Math.abs(ft) <= c.dt && Math.abs(fh) <= c.ds && Math.abs(fw) <= c.ds ? 1 : 0;
  }
  const a = f32(c.ratio * ft);
  const d2 = f32(f32(f32(a * a) + f32(fh * fh)) + f32(fw * fw));
  switch (filter.kind) {
    case "gaussian":
      return f32(Math.exp(f32(-d2 / c.twoDs2)));
    case "butterworth":
      return f32(1 / f32(1 + f32(Math.pow(f32(d2 / c.ds2), filter.order))));
    default: // ideal
      return d2 <= c.ds2 ? 1 : 0;
  }
}

/** Gain at one point of the normalised frequency cube (each coordinate in [-1, 1]). */
export function gainAt(filter, ft, fh, fw) {
  return binGain(filter, constants(filter), f32(ft), f32(fh), f32(fw));
}

/** Spatial profile: gain at spatial frequency x along one axis, temporal frequency 0. */
export function spatialGain(filter, x) {
  return gainAt(filter, 0, x, 0);
}

/** Temporal profile: gain at temporal frequency y, spatial frequency 0. */
export function temporalGain(filter, y) {
  return gainAt(filter, y, 0, 0);
}

/** The [t, h, w] mask in fftn order (C order, DC first) as a Float32Array, like LowPassFilter.mask(t, h, w). */
export function mask(filter, t, h, w) {
  const c = constants(filter);
  const ft = axisFrequencies(t), fh = axisFrequencies(h), fw = axisFrequencies(w);
  const out = new Float32Array(t * h * w);
  let i = 0;
  for (let a = 0; a < t; a++) {
    for (let b = 0; b < h; b++) {
      for (let k = 0; k < w; k++) out[i++] = binGain(filter, c, ft[a], fh[b], fw[k]);
    }
  }
  return out;
}

/** {kept, energy}: the mean of M (kept fraction) and of M^2 (white-noise energy kept) over a (t, h, w) grid. */
export function fractions(filter, grid = REFERENCE_GRID) {
  const [t, h, w] = grid;
  const m = mask(filter, t, h, w);
  let sum = 0, sum2 = 0;
  for (let i = 0; i < m.length; i++) {
    sum += m[i];
    sum2 += m[i] * m[i];
  }
  return { kept: sum / m.length, energy: sum2 / m.length };
}

export function keptFraction(filter, t, h, w) {
  return fractions(filter, [t, h, w]).kept;
}

export function noiseEnergyFraction(filter, t, h, w) {
  return fractions(filter, [t, h, w]).energy;
}

/** Distinct non-negative normalised frequencies of an axis with n bins (where the grid samples the profile). */
export function binFrequencies(n) {
  return [...new Set(Array.from(axisFrequencies(n), Math.abs))].sort((p, q) => p - q);
}
