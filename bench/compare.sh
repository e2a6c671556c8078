#!/usr/bin/env bash
# keel vs PyTorch on the seed CNN (CPU): alternating pairs, per-pair ratios, medians.
#
#   bench/compare.sh [PAIRS] [EPOCHS] [BATCH_SIZES...]
#   defaults: 5 pairs, 2 timed epochs (after one warm-up epoch), batch sizes 32 128
#
# Pair i runs both programs with seed i, keel first on odd pairs and PyTorch first
# on even ones, so drifting machine load hits both sides alike. Both use every
# core (rayon's default; torch.set_num_threads(nproc)). The first run creates
# bench/.venv with torch from PyPI: first `--no-deps torch` (plus its small pure
# Python deps), and only if that cannot import on the CPU the full `torch`
# (which pulls the CUDA wheels, several GB).
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${1:-5}
EPOCHS=${2:-2}
shift $(( $# > 2 ? 2 : $# )) || true
SIZES=("${@:-32 128}")
[ ${#SIZES[@]} -eq 1 ] && read -r -a SIZES <<< "${SIZES[0]}"
THREADS=$(nproc)
VENV=bench/.venv
PY=$VENV/bin/python

torch_ok() { "$PY" -c 'import torch, numpy; torch.randn(2).sum()' >/dev/null 2>&1; }
if ! torch_ok; then
    echo "setting up $VENV (torch from PyPI) ..." >&2
    [ -x "$PY" ] || python3 -m venv "$VENV"
    "$PY" -m pip install -q --no-deps torch
    "$PY" -m pip install -q numpy filelock typing-extensions sympy networkx jinja2 fsspec mpmath MarkupSafe
    if ! torch_ok; then
        echo "torch --no-deps does not import on this machine; installing torch with its dependencies" >&2
        "$PY" -m pip install -q torch
    fi
    torch_ok || { echo "error: cannot import torch from $VENV" >&2; exit 1; }
fi

cargo build --release -q -p keel-examples --example bench_cnn
KEEL=target/release/examples/bench_cnn
OUT=$(mktemp -d)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "torch $("$PY" -c 'import torch; print(torch.__version__)'), threads $THREADS, $PAIRS pairs, 1 warm-up + $EPOCHS timed epochs"

for bs in "${SIZES[@]}"; do
    for i in $(seq 1 "$PAIRS"); do
        k() { RAYON_NUM_THREADS=$THREADS "$KEEL" --batch-size "$bs" --epochs "$EPOCHS" --seed "$i" | tail -1 >> "$OUT/keel_$bs"; }
        t() { "$PY" bench/torch_seed_cnn.py --batch-size "$bs" --epochs "$EPOCHS" --seed "$i" --threads "$THREADS" | tail -1 >> "$OUT/torch_$bs"; }
        if (( i % 2 )); then k; t; else t; k; fi
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$OUT" "${SIZES[@]}" <<'EOF'
import json, statistics, sys
out, sizes = sys.argv[1], sys.argv[2:]
med = statistics.median
for bs in sizes:
    k = [json.loads(l) for l in open(f"{out}/keel_{bs}")]
    t = [json.loads(l) for l in open(f"{out}/torch_{bs}")]
    print(f"\nbatch {bs}: pair  train img/s keel / torch = ratio   infer img/s keel / torch = ratio   test acc keel / torch   peak RSS MiB keel / torch")
    tr, ir = [], []
    for i, (a, b) in enumerate(zip(k, t), 1):
        tr.append(a["train_images_per_s"] / b["train_images_per_s"])
        ir.append(a["infer_images_per_s"] / b["infer_images_per_s"])
        print(f"  {i:>2}  {a['train_images_per_s']:8.0f} / {b['train_images_per_s']:8.0f} = {tr[-1]:5.2f}"
              f"   {a['infer_images_per_s']:8.0f} / {b['infer_images_per_s']:8.0f} = {ir[-1]:5.2f}"
              f"   {a['test_accuracy']:.4f} / {b['test_accuracy']:.4f}"
              f"   {a['peak_rss_mib']:6.0f} / {b['peak_rss_mib']:6.0f}")
    ka, ta = [a["test_accuracy"] for a in k], [b["test_accuracy"] for b in t]
    print(f"  median train ratio {med(tr):.2f} (keel {med([a['train_images_per_s'] for a in k]):.0f} img/s,"
          f" torch {med([b['train_images_per_s'] for b in t]):.0f} img/s)")
    print(f"  median infer ratio {med(ir):.2f} (keel {med([a['infer_images_per_s'] for a in k]):.0f} img/s,"
          f" torch {med([b['infer_images_per_s'] for b in t]):.0f} img/s)")
    print(f"  mean test accuracy keel {100*statistics.mean(ka):.2f}% torch {100*statistics.mean(ta):.2f}%"
          f" (diff {100*(statistics.mean(ka)-statistics.mean(ta)):+.2f} points)")
    print(f"  max peak RSS keel {max(a['peak_rss_mib'] for a in k):.0f} MiB torch {max(b['peak_rss_mib'] for b in t):.0f} MiB")
EOF
rm -rf "$OUT"
