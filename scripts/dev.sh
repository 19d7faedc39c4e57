#!/usr/bin/env bash
# Set up everything on a fresh machine, then run the demo or the tests.
#   bash scripts/dev.sh demo   shipped model on a synthetic subject -> lesion table (demo-output/)
#   bash scripts/dev.sh test   the whole test suite (real napari viewer under Xvfb)
# The virtual environment lives in .venv and is reused when present.
set -euo pipefail
cd "$(dirname "$0")/.."

# torch is not pinned in the package metadata, so users on GPUs get CUDA builds. Here we ask for the
# CPU build that this kind of machine keeps in pip's local wheelhouse; override for your machine,
# e.g. TORCH_SPEC="torch" (newest, CUDA on Linux).
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

need_apt() {  # install Debian packages that are missing (X server and Qt's xcb libraries for napari tests)
  local missing=()
  for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

setup_python() {
  [ -x .venv/bin/python ] || python3 -m venv .venv
  if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    .venv/bin/pip install -q "$TORCH_SPEC"
  fi
  .venv/bin/pip install -q -e ".[testing]" 2>&1 | grep -v "is ignored: it is neither" || true
  .venv/bin/python -c "import napari_deepmir, torch" # fail here, not later, if the install is broken
}

case "${1:-}" in
  demo)
    need_apt libgl1 libegl1 libfontconfig1
    setup_python
    .venv/bin/deepmir demo --out demo-output
    ;;
  test)
    need_apt xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-render-util0 \
      libxcb-randr0 libxcb-shape0 libxcb-cursor0 libxkbcommon-x11-0 libgl1 libegl1 libdbus-1-3 libfontconfig1
    setup_python
    QT_QPA_PLATFORM=xcb .venv/bin/python -m pytest tests -p no:cacheprovider
    ;;
  *)
    echo "usage: bash scripts/dev.sh demo|test" >&2
    exit 64
    ;;
esac
