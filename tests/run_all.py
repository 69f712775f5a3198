"""The pack's test command: core tier once, then the host and browser tiers once per ComfyUI host.

    python tests/run_all.py [extra pytest args]

Hosts: COMFYUI_PATH (several checkouts separated by os.pathsep), else the ComfyUI the pack is installed in, else
the supported set ~/ComfyUI (v0.3.64), ~/ComfyUI-0.8 and ~/ComfyUI-0.33. ComfyUI keeps process-wide state, so
each host gets its own pytest process, run with that host's Python (see python_for). A host that is absent is reported in one line and counted as
absent, never as passed. FADE_NO_HOST=1 runs the core tier only. Prints one summary line per host and a last
line 'total: N passed, N failed, N skipped'; exits non-zero if anything failed.
"""
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "host"))
import harness  # noqa: E402  (imports no ComfyUI: checkout discovery and version only)

SUPPORTED = ("~/ComfyUI", "~/ComfyUI-0.8", "~/ComfyUI-0.33")
_OFF = {"", "0", "no", "off", "false", "none"}


is_comfy_root = harness.is_comfy_root
host_version = harness.host_version


def python_for(path: Path) -> str:
    """The host's Python: <host>/.venv or <host>/venv, else ~/venv-comfy-<major.minor> (or -<version>), the
    layout .ci/setup_hosts.sh makes, else this interpreter (the minimum host is set up on it)."""
    version = host_version(path)
    short = ".".join(version.split(".")[:2])
    candidates = [path / ".venv", path / "venv", Path.home() / f"venv-comfy-{short}",
                  Path.home() / f"venv-comfy-{version}"]
    for venv in candidates:
        python = venv / "bin" / "python"
        if python.is_file():
            return str(python)
    return sys.executable


def hosts():
    if os.environ.get("FADE_NO_HOST", "").strip().lower() not in _OFF:
        return []
    env = os.environ.get("COMFYUI_PATH")
    if env is not None and env.strip().lower() in _OFF:
        return []
    if not env and REPO.parent.name == "custom_nodes" and is_comfy_root(REPO.parent.parent):
        return [REPO.parent.parent]   # installed in a ComfyUI: test against that one
    entries = env.split(os.pathsep) if env else list(SUPPORTED)
    return [Path(e).expanduser() for e in entries if e.strip()]


def counts(junit: Path):
    """(passed, failed, skipped) from pytest's junit XML (errors count as failed)."""
    if not junit.is_file():
        return 0, 1, 0
    root = ElementTree.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    total = failed = skipped = 0
    for suite in suites:
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return total - failed - skipped, failed, skipped


def run(label, python, paths, env, extra, workdir):
    junit = Path(workdir) / (re.sub(r"[^A-Za-z0-9_.-]", "_", label) + ".xml")
    command = [python, "-m", "pytest", *paths, f"--junitxml={junit}", "-p", "no:cacheprovider", *extra]
    print(f"\n=== {label}: {' '.join(command)}", flush=True)
    code = subprocess.call(command, cwd=REPO, env=env, stdin=subprocess.DEVNULL)
    passed, failed, skipped = counts(junit)
    if code not in (0, 5) and failed == 0:
        failed = 1   # pytest itself failed (collection, crash)
    return passed, failed, skipped


def main(extra):
    summary, totals, absent = [], [0, 0, 0], []
    with tempfile.TemporaryDirectory(prefix="fade_tests_") as workdir:
        core_env = dict(os.environ, FADE_NO_HOST="1")
        result = run("core", sys.executable, ["tests/core"], core_env, extra, workdir)
        summary.append(f"core: {result[0]} passed, {result[1]} failed, {result[2]} skipped")
        totals = [a + b for a, b in zip(totals, result)]
        selected = hosts()
        if not selected:
            summary.append("hosts: none (FADE_NO_HOST or an empty COMFYUI_PATH); host and browser tiers not run")
        for path in selected:
            if not is_comfy_root(path):
                absent.append(str(path))
                summary.append(f"host {path}: ABSENT (no ComfyUI checkout there; see README 'Tests'), not run")
                continue
            version = host_version(path)
            python = python_for(path)
            env = dict(os.environ, COMFYUI_PATH=str(path))
            env.pop("FADE_NO_HOST", None)
            result = run(f"host v{version}", python, ["tests/host", "tests/browser"], env, extra, workdir)
            summary.append(f"host v{version} ({path}, {python}): {result[0]} passed, {result[1]} failed, "
                           f"{result[2]} skipped")
            totals = [a + b for a, b in zip(totals, result)]
    print("\n=== summary")
    for line in summary:
        print(line)
    print(f"total: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
