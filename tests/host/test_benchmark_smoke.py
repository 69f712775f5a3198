"""The benchmark (bench/fade_bench.py) runs end to end on the tiny model, so it cannot rot unnoticed.

It runs as the README documents it, in a subprocess (its own ComfyUI bootstrap and model), and only the shape of
its output is checked: every expected key present, every number finite. Nothing about time."""
import json
import math
import subprocess
import sys

import harness

BENCH = harness.REPO_ROOT / "bench" / "fade_bench.py"
KS = (1, 2, 4, 8)
STEP_VARIANTS = (["plain_cfg"] + [f"guided_k{k}_{c}" for k in KS for c in ("cold", "warm")]
                 + ["guided_k4_offload_cold", "guided_k4_offload_warm", "naive_k4"])
EDIT_PARTS = ("plain_sampling", "inversion", "guided_sampling", "rerun_warm_cache", "whole_edit")
FREEINIT_KEYS = ("mask_build_cpu_ms", "mask_build_full_cpu_ms", "mask_build_cpu_ms_max", "mask_build_device_ms",
                 "frequency_mix_ms", "reinitialise_ms", "own_work_ms", "pct_of_step", "pct_of_pass")
TARGETS = ("guided_step_k4", "whole_edit", "freeinit_pass_pct", "mask_build_cpu_ms")
FILTERS = ("gaussian", "butterworth", "ideal", "box")


def _numbers(value, path="result"):
    """(path, number) for every number in a JSON tree; bools are flags, not numbers."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{path}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield path, value
    elif value is None:
        yield path, value


def test_tiny_benchmark_writes_complete_json_and_markdown(comfy, tmp_path):
    out = tmp_path / "bench"
    cmd = [sys.executable, str(BENCH), "--size", "tiny", "--steps", "3", "--repeats", "1", "--edit-repeats", "1",
           "--warmup", "0", "--device", "cpu", "--comfyui", str(comfy.comfy_root), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"benchmark failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"

    result = json.loads((out / "bench.json").read_text())
    assert set(result) >= {"meta", "config", "steps", "edit", "freeinit", "targets"}
    assert set(result["meta"]) >= {"date", "device_type", "device_name", "torch", "comfyui", "memory_kind",
                                   "wall_s"}
    assert result["config"]["size"] == "tiny" and result["config"]["ks"] == list(KS)
    assert result["config"]["latent"] == [1, 16, 3, 8, 8]

    variants = result["steps"]["variants"]
    assert set(variants) == set(STEP_VARIANTS)
    for name in STEP_VARIANTS:
        assert {"time_s", "times_s", "repeats"} <= set(variants[name]), name
        if name != "plain_cfg":
            assert "ratio_vs_plain" in variants[name], name
        if name.startswith("guided"):
            assert {"gradient_s", "cfg_call_s"} <= set(variants[name]), name

    edit = result["edit"]
    for part in EDIT_PARTS:
        assert "time_s" in edit[part], part
    assert "ratio_vs_plain" in edit["whole_edit"] and "ratio_vs_plain" in edit["rerun_warm_cache"]

    freeinit = result["freeinit"]
    assert set(freeinit) >= set(FREEINIT_KEYS)
    assert set(freeinit["mask_build_cpu_ms"]) == set(FILTERS) == set(freeinit["mask_build_full_cpu_ms"])

    targets = {t["name"]: t for t in result["targets"]}
    assert set(targets) == set(TARGETS)
    for t in targets.values():
        assert isinstance(t["met"], bool) and isinstance(t["applies"], bool), t

    for path, number in _numbers(result):
        assert number is not None and math.isfinite(number), f"{path} = {number}"
    for name in STEP_VARIANTS:
        assert variants[name]["time_s"] > 0

    table = (out / "bench.md").read_text()
    assert table.strip() in proc.stdout                      # the table is printed too
    assert result["meta"]["date"] in table and result["meta"]["device_name"] in table
    for label in ("Plain CFG step", "Guided step K=4, cold", "Guided step K=4, offload activations",
                  "Naive guided step", "Whole FADE edit", "FreeInit mask build", "| Target |"):
        assert label in table, label
    for block in table.split("\n\n"):                        # every markdown table has even rows
        rows = [line for line in block.splitlines() if line.startswith("|")]
        assert all(row.count("|") == rows[0].count("|") for row in rows), block
