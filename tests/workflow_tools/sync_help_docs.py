"""Copies each node's help page js/docs/<node_id>.md to js/docs/<node_id>/en.md.

    python tests/workflow_tools/sync_help_docs.py

The frontend asks for /extensions/<pack>/docs/<node_id>/<locale>.md first and falls back to <node_id>.md; English
users get the first request answered, other locales the fallback. js/docs/<node_id>.md is the one to edit;
tests/host/test_workflows.py fails when a copy differs. Relative links resolve against docs/ in both (the frontend
uses /extensions/<pack>/docs/ as the base), so the copies are byte-identical.
"""
from __future__ import annotations

import pathlib

DOCS = pathlib.Path(__file__).resolve().parents[2] / "js" / "docs"


def pages():
    return sorted(DOCS.glob("FADE_*.md"))


def main():
    for page in pages():
        copy = DOCS / page.stem / "en.md"
        copy.parent.mkdir(exist_ok=True)
        if not copy.exists() or copy.read_bytes() != page.read_bytes():
            copy.write_bytes(page.read_bytes())
            print("wrote", copy.relative_to(DOCS.parents[1]))


if __name__ == "__main__":
    main()
