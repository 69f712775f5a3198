"""Package rules that need no ComfyUI: literal node ids, ASCII sources, the root package's exports."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
NODE_IDS = {"FADE_GaussianLPF3D", "FADE_FreeInit", "FADE_FreeInitNoiseReinit", "FADE_DDIMInvert",
            "FADE_SketchSpectrumGuide", "FADE_ModulatedDDIMSampler", "FADE_ExpertPairGuider"}


def test_node_ids_are_literals_in_the_source():
    found = set()
    for path in (ROOT / "nodes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "node_id" and isinstance(node.value, ast.Constant):
                found.add(node.value.value)
    assert found == NODE_IDS


def test_python_sources_are_ascii():
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                 if not any(part.startswith(".") for part in p.relative_to(ROOT).parts[:-1])
                 and not p.read_bytes().isascii()]
    assert offenders == []


def test_every_node_has_a_help_page():
    assert {p.stem for p in (ROOT / "js" / "docs").glob("FADE_*.md")} == NODE_IDS


def test_root_package_exports_only_the_entrypoint_and_web_directory():
    tree = ast.parse((ROOT / "__init__.py").read_text())
    names = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets}
    names |= {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert names == {"comfy_entrypoint", "WEB_DIRECTORY", "__all__"}
    assert not any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in tree.body)   # cheap to import


# The layers (README "Layout"): node files only declare; runtime lives in packages; algo imports no ComfyUI.
NODE_FILES = sorted((ROOT / "nodes").glob("*_nodes.py"))
RUNTIME_PACKAGES = ("fade", "freeinit", "comfy_glue", "experts")


def _top_level_names(path):
    return [node for node in ast.parse(path.read_text()).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def test_node_files_contain_node_declarations_only():
    assert NODE_FILES, "no nodes/*_nodes.py found"
    for path in NODE_FILES:
        for node in _top_level_names(path):
            assert isinstance(node, ast.ClassDef), f"{path.name}: top-level function {node.name} belongs in a runtime module"
            bases = [ast.unparse(b) for b in node.bases]
            assert bases == ["io.ComfyNode"], f"{path.name}: class {node.name} ({bases}) is not a node declaration"


def test_algo_imports_no_comfyui_and_runtime_packages_exist():
    for path in (ROOT / "nodes" / "algo").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not any(n.split(".")[0] in ("comfy", "comfy_api", "folder_paths", "server", "nodes")
                               for n in names), f"{path.name} imports {names}"
    for package in RUNTIME_PACKAGES:
        assert (ROOT / "nodes" / package / "__init__.py").is_file()
