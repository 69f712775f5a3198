"""The preview's JS filter formulas (js/lpf_math.js) against the Python core (nodes/algo/spectral.py).

One node process evaluates every case; masks of the 0/1 filters must match bit for bit (the JS repeats torch's
float32 rounding), the smooth ones to float32 rounding of exp/pow.
"""
import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node (Node.js) not found; JS/Python filter parity not checked")

ROOT = pathlib.Path(__file__).resolve().parents[2]
KINDS = ("gaussian", "butterworth", "ideal", "box")
# Odd and even sizes, T = 1, and sizes whose bins land exactly on cut-offs such as 0.2 (H = 30) and 0.25 (H = 8).
SHAPES = [(1, 1, 1), (1, 6, 7), (2, 8, 8), (3, 5, 9), (4, 12, 10), (5, 30, 20), (21, 20, 13)]
CUTOFFS = [(0.25, 0.25), (0.2, 0.5), (0.5, 0.2), (1.0, 1.0), (0.0, 0.3), (0.3, 0.0), (0.1, 0.9), (0.6, 0.05),
           (0.35, 0.65), (0.01, 0.01)]
ORDERS = {"butterworth": (1, 2, 4, 16)}

DRIVER = r"""
import * as lpf from "./lpf_math.mjs";
import { readFileSync } from "node:fs";
const cases = JSON.parse(readFileSync(0, "utf8"));
const out = cases.map(([kind, ds, dt, n, shape]) => {
  const filter = lpf.makeFilter(kind, ds, dt, n);
  if (shape === null) return lpf.fractions(filter);   // the reference grid, as the preview reports it
  const [t, h, w] = shape;
  return {
    mask: Array.from(lpf.mask(filter, t, h, w)),
    kept: lpf.keptFraction(filter, t, h, w),
    energy: lpf.noiseEnergyFraction(filter, t, h, w),
    // profiles at the bin frequencies: mask(1, h, 1) and mask(t, 1, 1) in Python
    spatial: Array.from(lpf.axisFrequencies(h), (x) => lpf.spatialGain(filter, x)),
    temporal: Array.from(lpf.axisFrequencies(t), (y) => lpf.temporalGain(filter, y)),
  };
});
process.stdout.write(JSON.stringify({ out, reference: lpf.REFERENCE_GRID, types: lpf.FILTER_TYPES }));
"""


def filters():
    for kind in KINDS:
        for ds, dt in CUTOFFS:
            for order in ORDERS.get(kind, (4,)):
                yield kind, ds, dt, order


@pytest.fixture(scope="module")
def js(tmp_path_factory):
    work = tmp_path_factory.mktemp("js_parity")
    # node treats a bare .js as CommonJS without a package.json; the .mjs copy is loaded as the ES module it is.
    shutil.copy(ROOT / "js" / "lpf_math.js", work / "lpf_math.mjs")
    (work / "driver.mjs").write_text(DRIVER)
    cases = [[*f, list(s)] for f in filters() for s in SHAPES] + [[*f, None] for f in filters()]
    result = subprocess.run([NODE, str(work / "driver.mjs")], input=json.dumps(cases), cwd=work,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    return {json.dumps(c): got for c, got in zip(cases, data["out"])}, data


def case(kind, ds, dt, order, shape):
    return json.dumps([kind, ds, dt, order, None if shape is None else list(shape)])


def test_constants_match(algo, js):
    _, data = js
    assert tuple(data["reference"]) == tuple(algo.spectral.REFERENCE_GRID)
    assert tuple(data["types"]) == tuple(algo.spectral.FILTER_TYPES)


@pytest.mark.parametrize("kind", KINDS)
def test_masks_and_profiles_match_python(algo, js, kind):
    results, _ = js
    for _, ds, dt, order in filter(lambda f: f[0] == kind, filters()):
        lpf = algo.spectral.LowPassFilter(kind, ds, dt, order)
        for shape in SHAPES:
            got = results[case(kind, ds, dt, order, shape)]
            want = lpf.mask(*shape).numpy()
            mask = np.asarray(got["mask"], dtype=np.float32).reshape(shape)
            t, h, _w = shape
            profiles = [(mask, want), (np.asarray(got["spatial"], dtype=np.float32), lpf.mask(1, h, 1).numpy().ravel()),
                        (np.asarray(got["temporal"], dtype=np.float32), lpf.mask(t, 1, 1).numpy().ravel())]
            for mine, theirs in profiles:
                where = f"{kind} ds={ds} dt={dt} n={order} shape={shape}"
                if kind in ("ideal", "box"):
                    # thresholds: a bin on the cut-off must fall on the same side in both
                    assert np.array_equal(mine, theirs), where
                else:
                    np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-6, err_msg=where)
            assert got["kept"] == pytest.approx(float(want.astype(np.float64).mean()), rel=1e-6, abs=1e-9)
            assert got["energy"] == pytest.approx(float((want.astype(np.float64) ** 2).mean()), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("kind", KINDS)
def test_reference_grid_fractions_match_python(algo, js, kind):
    results, _ = js
    grid = algo.spectral.REFERENCE_GRID
    for _, ds, dt, order in filter(lambda f: f[0] == kind, filters()):
        lpf = algo.spectral.LowPassFilter(kind, ds, dt, order)
        got = results[case(kind, ds, dt, order, None)]
        # torch reduces in float32, the JS in float64
        assert got["kept"] == pytest.approx(lpf.kept_fraction(*grid), rel=1e-5, abs=1e-9)
        assert got["energy"] == pytest.approx(lpf.noise_energy_fraction(*grid), rel=1e-5, abs=1e-9)
