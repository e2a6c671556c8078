#!/usr/bin/env bash
# Packs everything a GPU session needs for issue #7 into ./.gpu for ONE device run, then
# dry-runs the bundle here on the CUDA emulator (tools/cuda-emu) so no device time is
# spent on a bundle that cannot pass.
#
#   bash tools/gpu-check.sh              # pack + prebuild kernels + dry run (about 15 min on 2 cores)
#   bash tools/gpu-check.sh --no-dry-run # pack only
#
# Then, with the device tool: carry [".gpu"], command "bash .gpu/check.sh", timeout_s 540.
# check.sh runs the GPU test binaries (KEEL_REQUIRE_CUDA=1), gpu_bench, and
# mnist_cnn --device cuda --epochs 2, and leaves tests.log, gpu_bench.log and
# mnist_cnn.log in $OUT. Knobs (environment): BENCH_ARGS, MNIST_ARGS, SKIP (a list of
# tests/bench/mnist), and TESTS_TIMEOUT/BENCH_TIMEOUT/MNIST_TIMEOUT in seconds.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
pack=../shared/tools/gpu-pack
[ -x "$pack" ] || { echo "gpu-check: $pack not found (it lives in the shared folder beside the checkout)" >&2; exit 1; }

"$pack" test -p keel-cuda-kernels -p keel-tensor -p keel-autograd -p keel-optim -p keel-train --features cuda \
  --test gpu_kernels --test cuda --test cuda_index_errors --test cuda_optim --test cuda_gradcheck --test cuda_steps \
  --test device --test device_errors --test device_layers
rm -rf .gpu-tests && mv .gpu .gpu-tests
"$pack" build -p keel-examples --features cuda --example gpu_bench --example mnist_cnn --example prebuild_kernels
mkdir -p .gpu/tests
find .gpu-tests -maxdepth 1 -type f -perm -u+x ! -name run.sh -exec mv {} .gpu/tests/ \;
rm -rf .gpu-tests .gpu/run.sh

# Every kernel program compiled here for the H200 (sm_90) with the NVRTC of CI (13.0, the
# device's version), so the device spends none of its minutes in NVRTC. The cache key holds
# the NVRTC version: with another one there, the kernels are simply compiled there.
# Packed as a tarball (15 MB of PTX -> 2.4 MB) that check.sh unpacks.
nvrtc_dir=$(bash cuda-kernels/install-nvrtc.sh)
cache=$(mktemp -d)
LD_LIBRARY_PATH="$nvrtc_dir" KEEL_KERNEL_CACHE="$cache/kernel-cache" .gpu/prebuild_kernels --arch sm_90 | tail -n 1
tar -czf .gpu/kernel-cache.tar.gz -C "$cache" kernel-cache
rm -rf "$cache" .gpu/prebuild_kernels

cat > .gpu/check.sh <<'CHECK'
#!/usr/bin/env bash
# One device run for issue #7 (made by tools/gpu-check.sh): GPU tests, gpu_bench, mnist_cnn.
here=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-/tmp}
libs=""
for pat in 'libcuda.so.1' 'libnvrtc.so.1[0-9]' 'libnvrtc.so' 'libcublas.so.1[23]'; do
  d=$(find /usr/local/nvidia /usr/local/cuda* /usr/lib/x86_64-linux-gnu /opt /usr/local/lib /usr/lib/python3* -name "$pat" -print -quit 2>/dev/null | xargs -r dirname)
  [ -n "$d" ] && libs="$libs:$d"
done
export LD_LIBRARY_PATH="${libs#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export KEEL_REQUIRE_CUDA=1
# the kernels prebuilt for sm_90 (a dry run on the emulator passes its own cache)
if [ -z "${KEEL_KERNEL_CACHE:-}" ] && [ -f "$here/kernel-cache.tar.gz" ]; then
  tar -xzf "$here/kernel-cache.tar.gz" -C "$here" && export KEEL_KERNEL_CACHE="$here/kernel-cache"
fi
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH KEEL_KERNEL_CACHE=$KEEL_KERNEL_CACHE"; date -u
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
skip=" ${SKIP:-} "
status=0
set -o pipefail
if [[ $skip != *" tests "* ]]; then
  for t in "$here"/tests/*; do
    echo "=== $(basename "$t")"
    timeout "${TESTS_TIMEOUT:-240}" "$t" 2>&1 || { echo "FAILED: $(basename "$t")"; status=1; }
  done 2>&1 | tee "$out/tests.log" || status=1
fi
if [[ $skip != *" bench "* ]]; then
  echo "=== gpu_bench ${BENCH_ARGS:-}"
  timeout "${BENCH_TIMEOUT:-240}" "$here/gpu_bench" ${BENCH_ARGS:-} 2>&1 | tee "$out/gpu_bench.log" || status=1
fi
if [[ $skip != *" mnist "* ]]; then
  echo "=== mnist_cnn ${MNIST_ARGS:---device cuda --epochs 2}"
  timeout "${MNIST_TIMEOUT:-180}" "$here/mnist_cnn" ${MNIST_ARGS:---device cuda --epochs 2} 2>&1 | tee "$out/mnist_cnn.log" || status=1
fi
date -u
exit $status
CHECK
chmod +x .gpu/check.sh
du -sh .gpu
ls -la .gpu .gpu/tests

if [ "${1:-}" != "--no-dry-run" ]; then
  echo "== dry run on the CUDA emulator (not a GPU; mnist skipped: it takes ~18 min per epoch emulated)"
  emu=$(bash tools/cuda-emu/build.sh)
  dry=$(mktemp -d)
  LD_LIBRARY_PATH="$emu" KEEL_NVRTC_DIR="$emu" KEEL_KERNEL_CACHE="$emu/kernel-cache" OUT="$dry" \
    BENCH_ARGS="--sizes 128 --reps 1 --steps 2" BENCH_TIMEOUT=900 SKIP="mnist" bash .gpu/check.sh
  echo "== dry run passed; logs in $dry"
fi
echo "device tool: carry [\".gpu\"], command \"bash .gpu/check.sh\", timeout_s 540"
