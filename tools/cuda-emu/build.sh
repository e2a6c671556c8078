#!/usr/bin/env bash
# Builds the keel CUDA emulator (stand-in libcuda.so.1 and libnvrtc.so.13) into $1
# (default: target/cuda-emu) and prints that folder. Needs g++ (C++17), x86-64 Linux.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../../target/cuda-emu}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
cxx="${CXX:-g++}"
"$cxx" -std=c++17 -O2 -fPIC -shared -Wall -Wextra -Wno-unused-parameter \
  -Wl,-soname,libcuda.so.1 "$here/driver.cpp" -o "$out/libcuda.so.1" -ldl -lpthread
ln -sf libcuda.so.1 "$out/libcuda.so"
ln -sf libnvrtc.so.13 "$out/libnvrtc.so"
"$cxx" -std=c++17 -O2 -fPIC -shared -Wall -Wextra -Wno-unused-parameter \
  -Wl,-soname,libnvrtc.so.13 "$here/nvrtc.cpp" -o "$out/libnvrtc.so.13" -ldl
cp "$here/keel_emu_device.h" "$out/keel_emu_device.h"
echo "$out"
