#!/usr/bin/env bash
# The GPU check: student training throughput (tokens/s, MFU) with and without the speed levers,
# then a 2-stage MCKD run end to end through `mckd run` with a t5-base-shaped student on the GPU.
#
#   bash benchmarks/gpu_check.sh                 # on the GPU machine, from the repository root;
#                                                # wheels of missing packages in .whl/, results in $OUT
#   PY=/path/to/venv/python bash benchmarks/gpu_check.sh --cpu-smoke    # every part, tiny, on CPU
#                     (the compiled variant only with SMOKE_COMPILE=1: compiling takes minutes on a CPU)
#
# Parts (each under a hard timeout, so one hang cannot eat the rest):
#   1. nvidia-smi, versions, a bf16 matrix-product ceiling  -> $OUT/machine.txt
#   2. eager variants: batch 32 with a loss read every step (the old loop's syncs), then the
#      current loop at batch 32, 128, 256, 512                 -> $OUT/variants.jsonl
#   3. torch.compile variants at batch 256 and 512             -> $OUT/variants.jsonl
#   4. 2-stage MCKD through `python -m mckd run` (loopback teacher, t5-base student on CUDA)
#                                                              -> $OUT/mckd.json
# Logs: $OUT/variants.log, $OUT/mckd.log; the closing table also goes to $OUT/summary.txt.
set -uo pipefail
SMOKE=0
[ "${1:-}" = "--cpu-smoke" ] && SMOKE=1
if [ "$SMOKE" = 0 ]; then
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src
fi
# the smoke run uses the local environment (the wheels are for the GPU machine's Python 3.12)
[ "$SMOKE" = 1 ] && export PYTHONPATH=$PWD/src
PY=${PY:-python3}
OUT=${OUT:-$(mktemp -d)}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
echo "results in $OUT"

if [ "$SMOKE" = 1 ]; then
  DEV=(--tiny --device cpu); T_EAGER=120; T_COMPILE=300; T_MCKD=120; MCKD_ARGS=()
  COMPILE_VARIANTS=()
  [ "${SMOKE_COMPILE:-0}" = 1 ] && COMPILE_VARIANTS=(compiled-b8:compile=1,pad=16)
else
  DEV=(--device cuda); T_EAGER=130; T_COMPILE=160; T_MCKD=200
  MCKD_ARGS=(--pool 3000 --test 300 --epochs 3 --batch 128 --gen-batch 512 --pad 8)
  COMPILE_VARIANTS=(compiled-b256:batch=256,compile=1,pad=16,steps=30,warmup=8
                    compiled-b512:batch=512,compile=1,pad=16,steps=25,warmup=6)
fi

# 1. the machine, and its bf16 matrix-product ceiling (8192^3 products, ~2 s), reported next to MFU
{ nvidia-smi || echo "no nvidia-smi"; } 2>&1 | tee "$OUT/machine.txt"
CEILING=$(timeout -k 5 45 $PY - <<'PYEOF' 2>>"$OUT/machine.txt" | tee -a "$OUT/machine.txt" | sed -n 's/^bf16 matmul TFLOP\/s: //p'
import time, torch, transformers
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "transformers", transformers.__version__)
if torch.cuda.is_available():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(10):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(50):
        a @ b
    torch.cuda.synchronize()
    print("bf16 matmul TFLOP/s:", round(2 * 8192**3 * 50 / (time.perf_counter() - t) / 1e12, 1))
PYEOF
)
[[ "$CEILING" =~ ^[0-9.]+$ ]] || CEILING=790  # the figure measured on these machines before
[ "$SMOKE" = 0 ] && DEV+=(--ceiling-tflops "$CEILING")
grep -E "^(torch|bf16)" "$OUT/machine.txt"; echo "matmul ceiling used: $CEILING TFLOP/s"

# 2. eager variants (one process: one data set and tokenizer for all)
echo "== eager variants (timeout ${T_EAGER}s)"
timeout -k 10 "$T_EAGER" $PY benchmarks/gpu_student.py "${DEV[@]}" --jsonl "$OUT/variants.jsonl" --variants \
  eager-b32-sync-every-step:batch=32,log=1,steps=60,warmup=10 \
  eager-b32:batch=32,pad=8,log=100,steps=60,warmup=10 \
  eager-b128:batch=128,pad=8,log=100,steps=40,warmup=8 \
  eager-b256:batch=256,pad=8,log=100,steps=30,warmup=6 \
  eager-b512:batch=512,pad=8,log=100,steps=25,warmup=5 \
  >>"$OUT/variants.log" 2>&1
echo "eager variants: exit $?"

# 3. compiled variants (the first compiles for tens of seconds inside its warm-up steps)
if [ "${#COMPILE_VARIANTS[@]}" -gt 0 ]; then
  echo "== compiled variants (timeout ${T_COMPILE}s)"
  timeout -k 10 "$T_COMPILE" $PY benchmarks/gpu_student.py "${DEV[@]}" --jsonl "$OUT/variants.jsonl" \
    --variants "${COMPILE_VARIANTS[@]}" >>"$OUT/variants.log" 2>&1
  echo "compiled variants: exit $?"
fi

# 4. the 2-stage MCKD run through the CLI
echo "== 2-stage MCKD run (timeout ${T_MCKD}s)"
MCKD_DEVICE=cuda; [ "$SMOKE" = 1 ] && MCKD_DEVICE=cpu && MCKD_ARGS=(--tiny)
timeout -k 10 "$T_MCKD" $PY benchmarks/gpu_mckd.py --device "$MCKD_DEVICE" --work /tmp/gpu-mckd-run \
  --json "$OUT/mckd.json" --timeout $((T_MCKD - 15)) "${MCKD_ARGS[@]}" >"$OUT/mckd.log" 2>&1
echo "mckd run: exit $?"

# the table
$PY - "$OUT" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
rows = [json.loads(x) for x in (out / "variants.jsonl").read_text().splitlines()] if (out / "variants.jsonl").exists() else []
print(f"{'variant':28} {'batch':>5} {'s/step':>7} {'tokens/s':>10} {'TFLOP/s':>8} {'MFU':>6} {'of ceiling':>10} {'warm-up s':>9} {'GB':>5}")
for r in rows:
    pct = lambda x: f"{100 * x:.1f}%" if x is not None else "-"
    gb = f"{r['peak_memory_gb']:.1f}" if r["peak_memory_gb"] is not None else "-"
    print(f"{r['variant']:28} {r['batch']:>5} {r['seconds_per_step']:>7.3f} {r['tokens_per_s']:>10,.0f} "
          f"{r['achieved_tflops']:>8.1f} {pct(r['mfu']):>6} {pct(r['share_of_ceiling']):>10} {r['warmup_s']:>9.1f} {gb:>5}")
if (out / "mckd.json").exists():
    m = json.loads((out / "mckd.json").read_text())
    print(f"\n2-stage MCKD via mckd run on {m['device']}: exit {m['rc']}, wall {m['wall_s']:.1f} s, "
          f"{m['student_steps']} student steps in {m['student_train_s']:.1f} s of training, "
          f"student tokens/s {m['student_tokens_per_s'] or 0:,.0f}, test {m['test_score']}")
    for name, s in m["steps"].items():
        if s.get("steps"):
            print(f"  {name:14} wall {s['wall_s'] or 0:7.1f} s  train {s['train_s']:7.1f} s  {s['steps']:4} steps  "
                  f"{s['seconds_per_step']:.3f} s/step  {s['tokens_per_s']:,.0f} tokens/s")
        elif s:
            print(f"  {name:14} wall {s.get('wall_s') or 0:7.1f} s")
else:
    print("no mckd.json: see mckd.log")
EOF
