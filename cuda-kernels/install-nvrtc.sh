#!/usr/bin/env sh
# Installs NVRTC 13.0 (PyPI wheel nvidia-cuda-nvrtc, no CUDA toolkit or GPU needed) into
# ${KEEL_NVRTC_DIR:-$HOME/.local/keel-nvrtc} unless it is already there, then prints the
# directory holding libnvrtc.so.13 (add it to LD_LIBRARY_PATH).
#
#   export LD_LIBRARY_PATH="$(cuda-kernels/install-nvrtc.sh):$LD_LIBRARY_PATH"
set -eu

VERSION="13.0.88"
DIR="${KEEL_NVRTC_DIR:-$HOME/.local/keel-nvrtc}"
LIB="$DIR/nvidia/cu13/lib"
STAMP="$DIR/.keel-nvrtc-$VERSION"

if [ ! -f "$STAMP" ] || [ ! -f "$LIB/libnvrtc.so.13" ]; then
    PY="${PYTHON:-python3}"
    if ! command -v "$PY" >/dev/null 2>&1; then
        echo "install-nvrtc.sh: $PY not found (needed to install the nvidia-cuda-nvrtc wheel)" >&2
        exit 1
    fi
    mkdir -p "$DIR"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --upgrade \
        --target "$DIR" "nvidia-cuda-nvrtc==$VERSION" >&2
    if [ ! -f "$LIB/libnvrtc.so.13" ]; then
        echo "install-nvrtc.sh: libnvrtc.so.13 not found under $LIB after install" >&2
        exit 1
    fi
    touch "$STAMP"
fi
echo "$LIB"
