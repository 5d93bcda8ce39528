#!/usr/bin/env bash
# The GPU check, in one go (about 8 minutes on one H100/H200 with 16 cores, not yet run whole):
# builds the CUDA backend (build time printed), runs the cuda tests and the
# nvcc compile tests, then whole training runs and the rasterizer against gsplat; short tables last.
#
#   tools/gpu_check.sh                # from the repository root, on a machine with a GPU
#
# gsplat comes from wheels in .whl/ when present (a machine without network),
# else from the environment. Fetch it where pip works (its other needs are on the GPU image):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl gsplat==1.5.3 Logs go to $OUT (default /tmp/gpu_check).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export SPLAT_CACHE=${SPLAT_CACHE:-/tmp/splat_cache}
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cores', __import__('os').cpu_count())"

# 1. our build, alone on the machine so that its time means something
rm -rf "$SPLAT_CACHE"
$PY - <<'PY' 2>&1 | tee "$OUT/build.log"
import time
t = time.perf_counter()
from splat.render.cuda_backend import load_cuda_extension
load_cuda_extension()
print(f"cuda backend build + load: {time.perf_counter() - t:.1f} s")
PY
BUILD=$(grep -o 'build + load: [0-9.]* s' "$OUT/build.log" || echo "build failed")
find "$SPLAT_CACHE" -name build_error.log -exec tail -c 6000 {} \; 2>/dev/null

# 2. gsplat builds its kernels on first use: in the background while the tests run
$PY - > "$OUT/gsplat_build.log" 2>&1 <<'PY' &
import time, torch
t = time.perf_counter()
from gsplat import rasterization
m = torch.zeros(1, 3, device="cuda"); m[0, 2] = 2
q = torch.tensor([[1.0, 0, 0, 0]], device="cuda")
rasterization(m, q, torch.full((1, 3), 0.1, device="cuda"), torch.ones(1, device="cuda"), torch.ones(1, 3, device="cuda"),
              torch.eye(4, device="cuda")[None], torch.tensor([[[50.0, 0, 16], [0, 50, 16], [0, 0, 1]]], device="cuda"), 32, 32)
torch.cuda.synchronize()
print(f"gsplat first use (kernel build): {time.perf_counter() - t:.1f} s")
PY
GSPLAT_PID=$!

# 3. the cuda tests (with the 1M Gaussians at 1920x1080 one) and the nvcc compile tests;
# the test that runs gsplat waits for its build (two builds in one folder collide)
$PY -m pytest -q --tb=short -k "not gsplat" tests/test_cuda_backend.py tests/test_cuda_sources.py 2>&1 | tee "$OUT/tests.log"
wait $GSPLAT_PID
tail -n 3 "$OUT/gsplat_build.log"
$PY -m pytest -q --tb=short -k gsplat tests/test_cuda_backend.py 2>&1 | tee -a "$OUT/tests.log"
TESTS=$(grep -E '^[0-9]+ [a-z]+.* in [0-9.]+s' "$OUT/tests.log" | tr '\n' ' ')

# 4. whole training runs on the real capture (it travels with ../shared): splat against gsplat
if [ -d ../shared/real/bonsai ]; then
    $PY tools/bench_train_gpu.py 2>&1 | tee "$OUT/train.log"
else
    echo "../shared/real/bonsai is not here: no training benchmark" | tee "$OUT/train.log"
fi

# 5. the rasterizer against gsplat
$PY tools/bench_gpu.py "$@" 2>&1 | tee "$OUT/bench.log"

# 6. sharded training under nccl with one rank against one process (the exchange's overhead)
D=$OUT/dist; rm -rf "$D"; mkdir -p "$D"
$PY -c "import sys; sys.path.insert(0, 'tests'); from conftest import gaussian_dataset; gaussian_dataset('$D/data', views=16, size=256, n=20000)"
for mode in one nccl; do
    if [ $mode = one ]; then CMD="$PY -m splat.cli"; else CMD="$PY -m torch.distributed.run --standalone --nproc-per-node 1 -m splat.cli"; fi
    timeout 300 $CMD train "$D/data" --out "$D/$mode" --backend cuda --batch 2 --steps 500 --cap 40000 \
        --checkpoint-every 500 > "$D/$mode.json" 2> "$D/$mode.log" || tail -3 "$D/$mode.log"
done
DIST=$($PY - "$D" <<'PY'
import json, sys
rows = {m: json.loads(open(f"{sys.argv[1]}/{m}.json").read().strip().splitlines()[-1]) for m in ("one", "nccl")}
one, nccl = (rows[m]["train_seconds"] / rows[m]["steps"] for m in ("one", "nccl"))
print(f"one process {one * 1000:.1f} ms/step {rows['one']['psnr']:.2f} dB; nccl 1 rank {nccl * 1000:.1f} ms/step "
      f"{rows['nccl']['psnr']:.2f} dB; ratio {nccl / one:.2f}")
PY
)

echo
echo "== summary =="
echo "sharded: $DIST"
echo "build: $BUILD"
echo "tests: $TESTS"
sed -n '/^system /,/^training time/p' "$OUT/train.log"
sed -n '/^ *size /,$p' "$OUT/bench.log"
