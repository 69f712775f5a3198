#!/usr/bin/env bash
# Host-test dependencies: CPU torch 2.13.0 plus what ComfyUI imports, installed so
# that pip can never swap torch for another build (everything else goes through a
# constraints file pinning the torch that is installed). Idempotent; when all is
# already satisfied it only runs one quick Python check.
set -euo pipefail

PY=${PYTHON:-python}
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

if ! "$PY" -c "import torch; assert torch.__version__.startswith('2.13.0')" >/dev/null 2>&1; then
  "$PY" -m pip install torch==2.13.0
fi

# Not spandrel / kornia / torchvision: they pull a CUDA torch (tests/stubs has a torchvision stand-in).
REQS=(numpy einops safetensors transformers tokenizers sentencepiece aiohttp yarl pyyaml Pillow scipy tqdm
      psutil alembic sqlalchemy "pydantic~=2.0" "pydantic-settings~=2.0" av soundfile
      comfyui-frontend-package==1.27.10 comfyui-embedded-docs==0.2.6 comfyui-workflow-templates==0.1.95
      websocket-client pytest)
NODEPS=(torchsde trampoline)

# Exit 0 only if every requirement is installed at a matching version.
if "$PY" - "${REQS[@]}" "${NODEPS[@]}" <<'PYEOF' >/dev/null 2>&1
import sys
from importlib.metadata import version, PackageNotFoundError
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    req = Requirement(spec)
    try:
        v = version(req.name)
    except PackageNotFoundError:
        sys.exit(1)
    if req.specifier and not req.specifier.contains(v, prereleases=True):
        sys.exit(1)
PYEOF
then
  echo "host deps: already satisfied"
  exit 0
fi

constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==$("$PY" -c 'import torch; print(torch.__version__)')" >"$constraints"
"$PY" -m pip install -c "$constraints" "${REQS[@]}"
"$PY" -m pip install --no-deps "${NODEPS[@]}"
echo "host deps: installed"
