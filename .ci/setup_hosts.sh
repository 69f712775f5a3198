#!/usr/bin/env bash
# The newer ComfyUI hosts for the host and browser tiers, as ../shared/notes/hosts.md sets them up:
#   ~/ComfyUI-0.8  (v0.8.0,  upstream snapshot github:pollockjj/ComfyUI)
#   ~/ComfyUI-0.33 (v0.33.0, upstream snapshot github:yzkee/ComfyUI)
# each with its own venv ~/venv-comfy-<N> over the system CPU torch (never a CUDA build). ComfyUI is not on
# PyPI: a checkout missing here is made from a fetched snapshot (a bare git dir under $FADE_MIRROR_DIR,
# default /work/.mirror) when one is there; otherwise the host is reported absent by tests/run_all.py.
# Idempotent: a venv whose requirements stamp matches is left alone. Never fails the CI run.
set -uo pipefail
PY=${PYTHON:-python}
MIRROR=${FADE_MIRROR_DIR:-/work/.mirror}
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1

checkout() {   # checkout DIR MIRROR_NAME
  local dir=$1 git_dir="$MIRROR/$2/repo"
  [ -f "$dir/main.py" ] && return 0
  if [ ! -d "$git_dir" ]; then
    echo "hosts: $dir absent and no snapshot at $git_dir (fetch github:${2/+//} to get it)"
    return 1
  fi
  git clone -q -n "$git_dir" "$dir" && (cd "$dir" && git read-tree HEAD && git checkout-index -a -f 2>/dev/null)
  [ -f "$dir/main.py" ] && echo "hosts: $dir checked out from $git_dir"
}

venv_for() {   # venv_for DIR N
  local dir=$1 venv="$HOME/venv-comfy-$2"
  local torch_version stamp reqs
  torch_version=$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')
  reqs=$(mktemp)
  # torch and the packages that pull a CUDA torch stay out (tests/stubs stands in for torchvision / torchaudio).
  grep -v -i -E '^(torch|torchvision|torchaudio|kornia|spandrel)([^a-z0-9_-]|$)' "$dir/requirements.txt" >"$reqs"
  echo "pytest" >>"$reqs"; echo "websocket-client" >>"$reqs"
  stamp="torch==$torch_version $(sha256sum "$reqs" | cut -c1-16)"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.fade-stamp" 2>/dev/null)" = "$stamp" ]; then
    echo "hosts: $venv already set up for $dir"; rm -f "$reqs"; return 0
  fi
  [ -x "$venv/bin/python" ] || "$PY" -m venv --system-site-packages "$venv" || { rm -f "$reqs"; return 1; }
  local constraints; constraints=$(mktemp)
  echo "torch==$torch_version" >"$constraints"
  if "$venv/bin/python" -m pip install -q -c "$constraints" -r "$reqs"; then
    echo "$stamp" >"$venv/.fade-stamp"; echo "hosts: $venv set up for $dir"
  else
    echo "hosts: installing $dir's requirements into $venv failed"
  fi
  rm -f "$reqs" "$constraints"
}

checkout "$HOME/ComfyUI" "Comfy-Org+ComfyUI" || true
for spec in "0.8:pollockjj+ComfyUI" "0.33:yzkee+ComfyUI"; do
  n=${spec%%:*}
  if checkout "$HOME/ComfyUI-$n" "${spec#*:}"; then venv_for "$HOME/ComfyUI-$n" "$n"; fi
done
exit 0
