#!/usr/bin/env bash
# Runs keel's GPU test suite (the tests that compare CUDA with the CPU) on the CUDA
# emulator, with KEEL_REQUIRE_CUDA=1 so that nothing skips. No GPU needed.
# Extra arguments go to `cargo test` (e.g. `--release`, or `-- conv` to filter).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
emu="$(bash "$root/tools/cuda-emu/build.sh" "${KEEL_CUDA_EMU_DIR:-$root/target/cuda-emu}")"
# The stand-ins come first: cudarc finds "libcuda.so" and keel's NVRTC preload "libnvrtc.so.13" there.
export LD_LIBRARY_PATH="$emu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export KEEL_NVRTC_DIR="$emu"
# The "PTX" of an emulated build names a host object: keep it out of the real kernel cache.
export KEEL_KERNEL_CACHE="$emu/kernel-cache"
export KEEL_REQUIRE_CUDA=1
cd "$root"
echo "keel cuda-emu: $emu (CPU emulation: checks kernel logic and the host path, not GPU speed)"
# First the emulator's own checks: kernels that break CUDA's warp rules must be reported.
"${CXX:-g++}" -std=gnu++17 -O1 -x c++ -include "$emu/keel_emu_device.h" "$root/tools/cuda-emu/selftest.cpp" \
  -o "$emu/selftest"
"$emu/selftest"
cargo test -p keel-cuda-kernels -p keel-tensor -p keel-autograd -p keel-optim -p keel-train \
  --features keel-tensor/cuda,keel-autograd/cuda,keel-optim/cuda,keel-train/cuda \
  --test gpu_kernels --test cuda --test cuda_index_errors --test cuda_optim --test cuda_gradcheck --test cuda_steps \
  --test device --test device_errors --test device_layers "$@"
