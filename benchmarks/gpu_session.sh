#!/usr/bin/env bash
# The CUDA path, end to end, in one short session on a lent GPU: every step is bounded in time and
# logged; a failed step is reported and the next one runs. Most valuable first.
#
#   bash benchmarks/gpu_session.sh OUT_DIR [PYTHON]
#
# Writes OUT_DIR/session.log (every step's output, with rc and seconds) and copies what the
# benchmarks recorded (benchmarks/results/gpu.jsonl) there. Needs the package importable by
# PYTHON (default python3), e.g. PYTHONPATH=src. DEVICE=cpu runs the same steps, tiny, on the CPU
# to check the script itself.
set -u
OUT=${1:?usage: gpu_session.sh OUT_DIR [PYTHON]}
PY=${2:-python3}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
LOG="$OUT/session.log"
W=$(mktemp -d)
T="$PY -m trilemma"
if [ "$DEVICE" = cpu ]; then S=20; SECONDS_BENCH=0.5; MIN=0.05; N=200; else S=300; SECONDS_BENCH=4; MIN=0.3; N=2000; fi

step() {  # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2; shift 2
  local t0; t0=$(date +%s)
  echo "=== $name: $*" >>"$LOG"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  echo "=== $name: rc=$rc, $(( $(date +%s) - t0 )) s" | tee -a "$LOG"
}

{ nvidia-smi -L 2>&1 || true; $PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } >>"$LOG" 2>&1

# 1. One family each through train -> sample -> evaluate, in each precision the CLI offers on CUDA.
step train-diffusion-bf16 90 $T train --family diffusion --data mnist --out $W/diffusion --steps $S --device $DEVICE --quiet
step train-gan-fp16 90 $T train --family gan --data mnist --out $W/gan --steps $S --device $DEVICE --quiet \
  $( [ "$DEVICE" = cuda ] && echo --precision fp16 )
step train-vae-compile 120 $T train --family vae --data mnist --out $W/vae --steps $S --device $DEVICE --quiet --compile
step resume-diffusion 60 $T train --family diffusion --data mnist --out $W/diffusion --steps $((S + 50)) --device $DEVICE --quiet --resume
for f in diffusion gan vae; do
  step sample-$f 60 $T sample $W/$f --n $N --out $W/$f-samples.npz --device $DEVICE
  step evaluate-$f 90 $T evaluate $W/$f-samples.npz --data mnist --device $DEVICE --json $W/$f-eval.json
done
step train-diffusion-conditional 90 $T train --family diffusion --data mnist --out $W/cond --steps $S --device $DEVICE --quiet --conditional
step sample-class-guidance 60 $T sample $W/cond --n 64 --class 3 --guidance 2 --out $W/cond-3.npz --device $DEVICE
step conditional-agreement 90 $T conditional $W/cond --device $DEVICE

# 2. Capabilities on CUDA, on 64 held-out-like digits (the samples just drawn).
$PY -c "import numpy as np; d=np.load('$W/diffusion-samples.npz'); np.savez('$W/probe.npz', x=d['x'][:64])"
step inpaint-diffusion 120 $T inpaint $W/diffusion --images $W/probe.npz --mask center --out $W/inp-d.npz --device $DEVICE
step inpaint-gan 60 $T inpaint $W/gan --images $W/probe.npz --mask center --out $W/inp-g.npz --device $DEVICE
step inpaint-vae 60 $T inpaint $W/vae --images $W/probe.npz --mask center --out $W/inp-v.npz --device $DEVICE
step interpolate-diffusion 60 $T interpolate $W/diffusion --images $W/probe.npz --out $W/interp.png --device $DEVICE
step anomaly-vae 90 $T anomaly $W/vae --images $W/probe.npz --out $W/anomaly.csv --device $DEVICE
step upscale 60 $PY -c "
import numpy as np, subprocess, sys
x = np.load('$W/probe.npz')['x'][:16].astype(np.float32)
low = x.reshape(16, 14, 2, 14, 2, *x.shape[3:]).mean((2, 4)).round().astype(np.uint8)
np.savez('$W/low.npz', x=low)
sys.exit(subprocess.call('$T upscale $W/diffusion --images $W/low.npz --out $W/up.npz --device $DEVICE'.split()))"

# 3. Throughput: the U-Net's training step against the GPU's matmul peak (bench_gpu.py).
if [ "$DEVICE" = cuda ]; then
  step bench-eager 150 $PY benchmarks/bench_gpu.py --batches 128,512,2048 --seconds $SECONDS_BENCH --no-compile
  cp benchmarks/results/gpu.jsonl "$OUT/" 2>/dev/null
else
  step bench-smoke 60 $PY benchmarks/bench_gpu.py --smoke-cpu
fi

# 4. The comparison with the CUDA preset (wider networks, DDPM on the NFE curve), shortened.
step compare 300 $T compare --out $W/compare --minutes $MIN --samples $N --device $DEVICE --capabilities --quiet
cp $W/compare/results.json "$OUT/compare-results.json" 2>/dev/null
cp $W/compare/report.html "$OUT/compare-report.html" 2>/dev/null

# 5. torch.compile's gain on the same step, last: compiling takes a minute or more (max-autotune
#    did not finish its autotuning in 170 s on an H200, 2026-11-27).
if [ "$DEVICE" = cuda ]; then
  step bench-compile 150 $PY benchmarks/bench_gpu.py --batches 512 --precisions bf16 --seconds $SECONDS_BENCH \
    --compile-mode default
  cp benchmarks/results/gpu.jsonl "$OUT/" 2>/dev/null
fi
echo "=== done" | tee -a "$LOG"
