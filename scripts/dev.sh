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
# The official BIDS validator (npm), pinned: the tests check that what deepmir synth, import and cohort write passes it.
BIDS_VALIDATOR_VERSION="1.15.0"

need_apt() {  # install Debian packages that are missing (X server and Qt's xcb libraries for napari tests)
  local missing=()
  for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_into() {  # install_into VENV PIP-ARGS...: a virtual environment with torch and the package
  local venv="$1"; shift
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
    "$venv/bin/pip" install -q "$TORCH_SPEC"
  fi
  "$venv/bin/pip" install -q "$@" 2>&1 | grep -v "is ignored: it is neither" || true
  "$venv/bin/python" -c "import napari_deepmir, torch" # fail here, not later, if the install is broken
}

setup_bids_validator() {  # into .tools/bids-validator (node and npm from apt when missing); exported for the tests
  local bin=.tools/bids-validator/node_modules/.bin/bids-validator
  if [ "$("$bin" --version 2>/dev/null)" != "$BIDS_VALIDATOR_VERSION" ]; then
    command -v npm >/dev/null || need_apt nodejs npm
    npm install --silent --no-audit --no-fund --prefix .tools/bids-validator "bids-validator@$BIDS_VALIDATOR_VERSION"
  fi
  export BIDS_VALIDATOR="$PWD/$bin"  # set, the validator tests fail rather than skip when it does not run
}

setup_python() {
  install_into .venv -e ".[testing]"
}

check_headless() {  # the core without extras: no napari, no Qt, and predict and cohort still work
  install_into .venv-headless --upgrade .
  if .venv-headless/bin/python -c "import napari" 2>/dev/null || .venv-headless/bin/python -c "import qtpy" 2>/dev/null; then
    echo "headless check: napari or Qt got installed without the napari extra" >&2
    return 1
  fi
  local work; work="$(mktemp -d)"
  local deepmir=.venv-headless/bin/deepmir
  "$deepmir" synth "$work/bids" --subjects 2 --shape 64 72 20 --voxel-size 2.5 2.5 6 --fine-voxel 1.25 1.25 3
  "$deepmir" predict --subject "$work/bids/sub-001" --device cpu --out "$work/predict"
  "$deepmir" cohort "$work/bids" --out "$work/derivatives" --device cpu --workers 1
  rm -rf "$work"
  echo "headless check: deepmir predict and cohort ran without napari or Qt"
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
    setup_bids_validator
    .venv/bin/ruff check .
    check_headless
    QT_QPA_PLATFORM=xcb .venv/bin/python -m pytest tests -p no:cacheprovider
    ;;
  *)
    echo "usage: bash scripts/dev.sh demo|test" >&2
    exit 64
    ;;
esac
