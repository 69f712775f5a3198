#!/usr/bin/env bash
# Browser-tier dependency: a Chromium for tests/browser (driven over the DevTools protocol with websocket-client,
# which install_host_deps.sh already installs). Idempotent: does nothing when a Chromium is already found.
# Installs Debian's `chromium` package with apt-get (root or passwordless sudo), plus one small font package so
# that thumbnails never show missing-glyph boxes on minimal images. Ubuntu's `chromium` is a snap
# wrapper that does not run in containers; there, set FADE_CHROMIUM to any Chrome/Chromium binary instead.
# Without a Chromium the browser tests skip themselves with one line; this script never fails the CI run.
set -uo pipefail

find_chromium() {
  if [ -n "${FADE_CHROMIUM:-}" ] && [ -x "$FADE_CHROMIUM" ]; then echo "$FADE_CHROMIUM"; return 0; fi
  for name in chromium chromium-browser google-chrome google-chrome-stable chrome; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}

if path=$(find_chromium); then
  echo "browser deps: already satisfied ($path)"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser deps: no apt-get here; install Chromium yourself or set FADE_CHROMIUM (browser tests will skip)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "browser deps: not root and no passwordless sudo; browser tests will skip"
    exit 0
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; then
  if path=$(find_chromium); then echo "browser deps: installed $path"; exit 0; fi
fi
echo "browser deps: installing chromium failed; browser tests will skip"
exit 0
