#!/usr/bin/env bash
# gpu-check.sh — runs on the GPU machine, from inside the bundle that tools/bundle.sh made:
# finds the machine's own cuDNN / cuBLAS (PyTorch's pip wheels) and puts them on
# LD_LIBRARY_PATH, records the GPU and the libraries, runs the CUDA test suite, benchmarks lcam
# and PyTorch on the same work (VGG-16 and ResNet-50: forward pass, L-CAM-Img training step,
# L-CAM / Grad-CAM / Score-CAM / RISE maps, AD/IC evaluation), runs the rest of the test suite
# and a CLI prediction on the GPU, then the longer benchmarks (see PARTS). Every step has a timeout
# and a global deadline keeps the whole run under 8 minutes; a failing step never stops the
# next one. Results go to the folder given as argument, flat and as at most 8 files (easy to
# copy back), ending with summary.txt: one PASS / FAIL / TIMEOUT / SKIP line per step, then
# the benchmarks as one table (tools/bench_table.py: lcam and PyTorch side by side).
# Deliberately omits building anything and installing anything: if the bundle cannot start,
# env.txt shows ldd's view of why.
#
# usage: gpu-check.sh OUT_DIR [PARTS]   (e.g. cd gpu-bundle && ./gpu-check.sh "$OUT")
# PARTS: comma-separated, run in the order given; default tests,core,rest,cli,maps: tests (the
# CUDA suite), core (forward, training step, L-CAM and Grad-CAM maps, AD/IC benchmarks, then
# lcam's CUDA-graph rows), rest (the other suites), cli (a prediction and the whole demo on the
# GPU), maps (Score-CAM and RISE benchmarks, the profile of lcam's training step, its kernels
# under nsys, else under ncu (one timed step), where the machine has either, both sides in
# bfloat16, per-layer forward times in TF32 and bf16, lcam with cuDNN's fused convolutions off,
# with --deterministic, bf16 graph replays).
# A second call with the parts the first one ran out of time for (e.g. `maps`) finishes the set.
set -u
set -o pipefail

OUT=${1:?usage: gpu-check.sh OUT_DIR}
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
PARTS=",${2:-tests,core,rest,cli,maps},"
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE" || exit 2

START=$(date +%s)
# The library path as the machine set it: the PyTorch side runs with it, so that torch loads the
# cuDNN / cuBLAS its wheels pin rather than the ones put on the path below for lcam.
ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH-}
# Seconds for all steps: with the kill grace (5 s) and the table (up to 30 s) after them, the
# whole run stays under 8 minutes.
BUDGET=${GPU_CHECK_BUDGET:-420}
DEADLINE=$((START + BUDGET))

SUMMARY=$OUT/summary.txt
ENVF=$OUT/env.txt
: >"$SUMMARY"
: >"$ENVF"
export PYTHONUNBUFFERED=1

note() { echo "$*" | tee -a "$ENVF"; }

# step NAME LIMIT STDOUT STDERR CMD...: runs CMD with min(LIMIT, time left) seconds and logs
# its status to the summary. STDOUT and STDERR may be the same file. Skipped when less than a
# third of LIMIT (at least 15 s) is left: a benchmark that spends its first 10-30 s importing
# torch and building models would time out with nothing to show, and the call's time is better
# left to a second call with that part.
step() {
  local name=$1 limit=$2 out=$3 err=$4
  shift 4
  local now left rc status t0 dt need
  now=$(date +%s)
  left=$((DEADLINE - now))
  need=$((limit / 3))
  [ "$need" -lt 15 ] && need=15
  if [ "$left" -lt "$need" ]; then
    printf '%-34s %-18s %5s  %s\n' "$name" "SKIP(no time)" "-" "" >>"$SUMMARY"
    echo "== $name: skipped, no time left" | tee -a "$err"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "== $name (limit ${limit}s): $*" >>"$err"
  echo "== $name (limit ${limit}s)"
  t0=$(date +%s)
  # STEP_LIMIT: the seconds the command has (tools/run_suite.py sizes its budget by it).
  if [ "$out" = "$err" ]; then
    STEP_LIMIT=$limit timeout -k 5 "$limit" "$@" >>"$out" 2>&1
  else
    STEP_LIMIT=$limit timeout -k 5 "$limit" "$@" >>"$out" 2>>"$err"
  fi
  rc=$?
  dt=$(($(date +%s) - t0))
  if [ "$rc" -eq 0 ]; then
    status=PASS
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    status="TIMEOUT(${limit}s)"
  else
    status="FAIL(rc=$rc)"
  fi
  echo "== $name: $status in ${dt}s" >>"$err"
  printf '%-34s %-18s %4ds  %s\n' "$name" "$status" "$dt" "$(basename "$out")" >>"$SUMMARY"
  return 0
}

# ---- environment: GPU, libraries ------------------------------------------------------------
note "gpu-check: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname 2>/dev/null || echo '?')"
# Libraries the bundle carries gzipped (tools/bundle.sh COMPRESS=1): unpack them in place.
for gz in lib/*.gz; do
  [ -e "$gz" ] || continue
  if gzip -dc "$gz" >"${gz%.gz}.tmp" 2>/dev/null ||
    python3 -c 'import gzip, shutil, sys; shutil.copyfileobj(gzip.open(sys.argv[1]), open(sys.argv[2], "wb"))' \
      "$gz" "${gz%.gz}.tmp"; then
    mv "${gz%.gz}.tmp" "${gz%.gz}" && rm -f "$gz" && note "unpacked $gz"
  else
    note "could not unpack $gz (no gzip, no python3)"
  fi
done
[ -f bundle-info.txt ] && { echo "--- bundle-info.txt"; cat bundle-info.txt; } >>"$ENVF"
{
  echo "--- nvidia-smi"
  timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit \
    --format=csv 2>&1
  timeout 20 nvidia-smi 2>&1
} >>"$ENVF"

# The Python with PyTorch (the comparison side, and the wheels' cuDNN / cuBLAS): the first of
# these that imports torch, else plain python3 (the test runner and the table need no torch).
# One import per candidate: the one that works also prints the versions.
PY=python3
py_info="no python with torch"
for c in python3 /usr/bin/python3 /usr/local/bin/python3 /opt/conda/bin/python /opt/conda/bin/python3 \
  "${HOME:-/nonexistent}/.venv/bin/python" /opt/venv/bin/python; do
  command -v "$c" >/dev/null 2>&1 || continue
  if info=$(timeout 60 "$c" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__,
    "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.is_available())' 2>/dev/null); then
    PY=$c
    py_info=$(printf '%s' "$info" | tail -n 1)
    break
  fi
done
note "python: $PY ($py_info)"

# Directories that may hold the wheels' CUDA libraries: python's site-packages first (PyTorch
# ships cuDNN and cuBLAS there), then the usual system places.
roots=()
if command -v "$PY" >/dev/null; then
  while IFS= read -r d; do [ -d "$d" ] && roots+=("$d"); done < <(timeout 30 "$PY" -c \
    'import site, sys; print("\n".join(site.getsitepackages() + [site.getusersitepackages()]))' \
    2>/dev/null)
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/lib/x86_64-linux-gnu /usr/local/lib /opt; do
  [ -d "$d" ] && roots+=("$d")
done

find_lib_dir() {  # prints the folder of the first $1 found, or nothing
  local name=$1 hit r
  hit=$(ldconfig -p 2>/dev/null | awk -v n="$name" '$1 == n {print $NF; exit}')
  if [ -z "$hit" ]; then
    for r in "${roots[@]}"; do
      hit=$(timeout 30 find "$r" -maxdepth 7 -name "$name" -print -quit 2>/dev/null)
      [ -n "$hit" ] && break
    done
  fi
  [ -n "$hit" ] && dirname "$(readlink -f "$hit")"
}

libdirs=""
for lib in libcudnn.so.9 libcublas.so.13 libcublasLt.so.13; do
  d=$(find_lib_dir "$lib")
  if [ -n "$d" ]; then
    note "found $lib in $d"
    case ":$libdirs:" in *":$d:"*) ;; *) libdirs="${libdirs:+$libdirs:}$d" ;; esac
  else
    note "NOT FOUND: $lib (the CUDA build of lcam cannot start without it)"
  fi
done
# cuDNN 9 loads some engines' helpers at run time (NVRTC); offer them when present.
for lib in libnvrtc.so.13 libnvJitLink.so.13; do
  d=$(find_lib_dir "$lib")
  [ -n "$d" ] || continue
  note "found $lib in $d"
  case ":$libdirs:" in *":$d:"*) ;; *) libdirs="${libdirs:+$libdirs:}$d" ;; esac
done
# The bundled libcudart (lib/, found through the binaries' rpath) normally wins; the machine's
# own copy is the fallback should the bundled one be missing.
d=$(find_lib_dir libcudart.so.13)
if [ -n "$d" ]; then
  note "machine's libcudart.so.13: $d"
  case ":$libdirs:" in *":$d:"*) ;; *) libdirs="${libdirs:+$libdirs:}$d" ;; esac
fi
# The bundle's own lib/ is not on it: the binaries find it through their rpath. (The PyTorch
# steps run with the machine's own path, ORIG_LD_LIBRARY_PATH.)
export LD_LIBRARY_PATH="${libdirs}${LD_LIBRARY_PATH:+${libdirs:+:}$LD_LIBRARY_PATH}"
# A machine whose libstdc++ is older than the build's (GLIBCXX_... not found): the bundle's
# fallback copies of libstdc++ and libgcc_s go first.
if ! start_err=$(./lcam --version 2>&1 >/dev/null) && [ -d lib-fallback ] &&
  printf '%s' "$start_err" | grep -q -E 'GLIBCXX|CXXABI|libstdc|libgcc_s'; then
  export LD_LIBRARY_PATH="$HERE/lib-fallback${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  note "lcam did not start with the machine's C++ runtime ($(printf '%s' "$start_err" | head -n 1)); using lib-fallback/"
fi
note "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
note "lcam --version: $(./lcam --version 2>&1 | head -n 2 | tr '\n' ' ')"
{
  echo "--- ldd lcam_tests"
  ldd ./lcam_tests 2>&1
} >>"$ENVF"

# The test binary has the build machine's source folder and lcam path compiled in (fixtures,
# CLI tests). Offer both here: through the environment, and as links where the paths are free.
SRC_DIR=$(sed -n 's/^source_dir=//p' bundle-info.txt 2>/dev/null)
BIN_PATH=$(sed -n 's/^lcam_binary=//p' bundle-info.txt 2>/dev/null)
# Fixtures: the bundle's own, or (LEAN=1 bundles) the working tree's around it. Sample photos:
# the twenty the bundle carries.
if [ -d "$HERE/tests/fixtures" ]; then FIX_ROOT=$HERE; else FIX_ROOT=$(cd "$HERE/.." && pwd); fi
export LCAM_SOURCE_DIR="$FIX_ROOT" LCAM_SHARED_DIR="$HERE/shared" LCAM_BINARY="$HERE/lcam"
# The bundle's Fashion-MNIST subset: the learning test runs the demo on the CPU and on CUDA.
[ -d "$HERE/fashion-mnist" ] && export LCAM_FASHION_MNIST="$HERE/fashion-mnist"
if [ -n "$SRC_DIR" ] && [ ! -e "$SRC_DIR" ]; then
  mkdir -p "$(dirname "$SRC_DIR")" 2>/dev/null && ln -s "$HERE" "$SRC_DIR" 2>/dev/null &&
    note "linked $SRC_DIR -> $HERE"
fi
if [ -n "$BIN_PATH" ] && [ ! -e "$BIN_PATH" ]; then
  mkdir -p "$(dirname "$BIN_PATH")" 2>/dev/null && ln -s "$HERE/lcam" "$BIN_PATH" 2>/dev/null &&
    note "linked $BIN_PATH -> $HERE/lcam"
fi
# The CLI tests read SOURCE/../shared/data/imagenet-sample; the bundle carries twenty of them.
if [ -n "$SRC_DIR" ] && [ ! -e "$SRC_DIR/../shared/data" ] && [ -d "$HERE/shared/data" ]; then
  mkdir -p "$SRC_DIR/../shared" 2>/dev/null && ln -s "$HERE/shared/data" "$SRC_DIR/../shared/data" \
    2>/dev/null && note "linked $SRC_DIR/../shared/data -> $HERE/shared/data"
fi
if [ ! -d "$FIX_ROOT/tests/fixtures" ]; then
  note "warning: fixtures not at $FIX_ROOT/tests/fixtures"
fi
note "environment ready after $(($(date +%s) - START))s"

# ---- 1. CUDA test suite (parity of every op against the CPU) ---------------------------------
# Through tools/run_suite.py where python3 is: a case that crashes, hangs or loses the CUDA
# context (a sticky error such as an illegal address) is named, the cases after it run in a
# fresh process, and the culprit is rerun alone under compute-sanitizer if time is left.
if command -v "$PY" >/dev/null && [ -f tools/run_suite.py ]; then
  SUITE=("$PY" tools/run_suite.py ./lcam_tests)
  # Under gVisor (kernel 4.4.0) compute-sanitizer refuses the device ("Device not supported"):
  # no culprit is rerun under it there, which would only spend the suite's time.
  if [[ "$(uname -r)" == 4.4.0* ]]; then
    note "gVisor kernel ($(uname -r)): culprits not rerun under compute-sanitizer"
    SUITE=("$PY" tools/run_suite.py --sanitizer off ./lcam_tests)
  fi
else
  SUITE=(./lcam_tests --duration=true)
fi
part_tests() {
  step "tests: cuda suite" 200 "$OUT/tests-cuda.log" "$OUT/tests-cuda.log" \
    "${SUITE[@]}" --test-suite=cuda
}

# ---- 2. benchmarks: lcam then PyTorch, same shapes, same math (TF32 for convolutions and
# matrix products on both sides: lcam's default, PyTorch's --tf32 on) ---------------------------
# PyTorch's side, with the machine's own library path (ORIG_LD_LIBRARY_PATH: see above), both
# models, TF32 on.
TORCH_BENCH=(env LD_LIBRARY_PATH="$ORIG_LD_LIBRARY_PATH" "$PY" tools/bench_work_torch.py --arch vgg16,resnet50
  --device cuda --tf32 on)
# bench WORKS LIMIT BATCHES [flags for both sides...]: both models, the works in turn, each side
# in one process (the PyTorch import and model set-up are paid once).
bench() {
  local works=$1 limit=$2 batches=$3
  shift 3
  step "bench lcam $works" "$limit" "$OUT/bench-lcam.jsonl" "$OUT/bench.log" \
    ./lcam bench --arch vgg16,resnet50 --device cuda --work "$works" --batch "$batches" --json "$@"
  step "bench torch $works" "$limit" "$OUT/bench-torch.jsonl" "$OUT/bench.log" \
    "${TORCH_BENCH[@]}" --work "$works" --batch "$batches" --json "$@"
}
part_core() {
  # The forward pass; the L-CAM-Img training step (forward, backward to the attention, SGD),
  # Grad-CAM and AD/IC (the unmasked scores and the three thresholds) at batch 64; L-CAM's
  # saliency maps (one forward pass) at batch 1 (latency) and 64 (throughput).
  bench forward 80 1,32,64 --iters 10 --warmup 3
  bench train-img,gradcam,adic 120 64 --iters 5 --warmup 2
  bench explain 60 1,64 --iters 10 --warmup 3
  # The same works replayed from CUDA graphs (lcam only; PyTorch's rows above are eager): the
  # per-kernel launch cost is what batch 1 pays most.
  step "bench lcam graphs" 90 "$OUT/bench-lcam.jsonl" "$OUT/bench.log" \
    ./lcam bench --arch vgg16,resnet50 --device cuda --work forward,explain --batch 1,64 --graph \
    --iters 10 --warmup 3 --json
  step "bench lcam graph train-img" 60 "$OUT/bench-lcam.jsonl" "$OUT/bench.log" \
    ./lcam bench --arch vgg16,resnet50 --device cuda --work train-img --batch 64 --graph \
    --iters 5 --warmup 2 --json
}
part_maps() {
  # In order of what the next step of the work needs most, since the budget may end it early:
  # the issue's Score-CAM / RISE figures, then where the time goes, then the variants.
  # Score-CAM and RISE (C and 4000/8000 forward passes per image) on one image.
  bench scorecam,rise 150 1 --iters 2 --warmup 1
  # Where the L-CAM-Img step spends its device time: every range (its phases, each layer's
  # forward in both passes and its backward, each op), timed with events: tables in bench.log.
  step "bench lcam profile train-img" 60 "$OUT/bench.log" "$OUT/bench.log" \
    ./lcam bench --arch vgg16,resnet50 --device cuda --work train-img --batch 64 --profile \
    --iters 3 --warmup 2
  # Every kernel of the VGG-16 training step by name (cuDNN's own names tell which algorithms
  # and layout transposes run), where the machine has Nsight Systems: the top of its kernel
  # summary goes into bench.log.
  local nsys=""
  for c in nsys /usr/local/cuda/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys; do
    if command -v "$c" >/dev/null 2>&1; then nsys=$(command -v "$c"); break; fi
  done
  if [ -n "$nsys" ]; then
    step "nsys train-img vgg16" 120 "$OUT/bench.log" "$OUT/bench.log" \
      bash -c '"$0" profile -o /tmp/lcam-nsys --force-overwrite true --trace cuda,nvtx --sample none --cpuctxsw none \
        ./lcam bench --arch vgg16 --device cuda --work train-img --batch 64 --iters 2 --warmup 2 &&
        { "$0" stats --force-export true --report cuda_gpu_kern_sum --format csv /tmp/lcam-nsys.nsys-rep 2>/dev/null ||
          "$0" stats --force-export true --report gpukernsum --format csv /tmp/lcam-nsys.nsys-rep; } | head -n 45' "$nsys"
  else
    printf '%-34s %-18s %5s  %s\n' "nsys train-img vgg16" "SKIP(no nsys)" "-" "" >>"$SUMMARY"
    # Without Nsight Systems, Nsight Compute gives the same table: the kernels of one timed
    # step (lcam bench's NVTX range "bench timed": not the warm-up's algorithm searches), each
    # replayed once for its duration alone, clocks left as they are; summed by name
    # (tools/kernel_summary.py).
    local ncu=""
    for c in ncu /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu; do
      if command -v "$c" >/dev/null 2>&1; then ncu=$(command -v "$c"); break; fi
    done
    if [ -n "$ncu" ]; then
      step "ncu train-img vgg16" 120 "$OUT/bench.log" "$OUT/bench.log" \
        bash -c '"$0" --clock-control none --nvtx --nvtx-include "bench timed/" --metrics gpu__time_duration.sum \
          --export /tmp/lcam-ncu --force-overwrite \
          ./lcam bench --arch vgg16 --device cuda --work train-img --batch 64 --iters 1 --warmup 2 >/dev/null &&
          "$0" --import /tmp/lcam-ncu.ncu-rep --csv --page raw --print-units base >/tmp/lcam-ncu.csv &&
          echo "kernels of one VGG-16 L-CAM-Img step at batch 64 (Nsight Compute):" &&
          "$1" tools/kernel_summary.py /tmp/lcam-ncu.csv --top 45' "$ncu" "$PY"
    else
      printf '%-34s %-18s %5s  %s\n' "ncu train-img vgg16" "SKIP(no ncu)" "-" "" >>"$SUMMARY"
    fi
  fi
  # bfloat16: lcam's bf16 convolutions (NHWC, float32 accumulation) against PyTorch's autocast
  # (rows marked +bf16; each side's accuracy cost is in the CUDA suite's log for lcam).
  step "bench lcam bf16" 90 "$OUT/bench-lcam.jsonl" "$OUT/bench.log" \
    ./lcam bench --arch vgg16,resnet50 --device cuda --work forward,train-img --batch 64 \
    --precision bf16 --iters 5 --warmup 2 --json
  step "bench torch bf16" 90 "$OUT/bench-torch.jsonl" "$OUT/bench.log" \
    "${TORCH_BENCH[@]}" --amp bf16 --work forward,train-img --batch 64 --iters 5 --warmup 2 --json
  # Where the forward pass spends its time, layer by layer (a synchronization after each), in
  # TF32 and in bf16 (whose convolutions include their layout and rounding passes), lcam's and
  # PyTorch's (the same layer names, timed the same way): the tables go into bench.log.
  local amp
  for prec in tf32 bf16; do
    step "bench lcam layers $prec" 60 "$OUT/bench.log" "$OUT/bench.log" \
      ./lcam bench --arch vgg16,resnet50 --device cuda --work forward --batch 64 --layers \
      --precision "$prec" --iters 5 --warmup 2
    amp=off
    [ "$prec" = bf16 ] && amp=bf16
    step "bench torch layers $prec" 60 "$OUT/bench.log" "$OUT/bench.log" \
      "${TORCH_BENCH[@]}" --work forward --batch 64 --layers --amp "$amp" --iters 5 --warmup 2
  done
  # What cuDNN's fused convolution + bias + ReLU brings: the forward pass and the training step
  # with it switched off (lcam only; rows marked +nofusion).
  step "bench lcam no fusion" 90 "$OUT/bench-lcam.jsonl" "$OUT/bench.log" \
    ./lcam bench --arch vgg16,resnet50 --device cuda --work forward,train-img --batch 64 \
    --conv-fusion off --iters 5 --warmup 2 --json
  # What reproducible runs cost (--deterministic: only deterministic cuDNN algorithms, chosen
  # untimed; lcam only, rows marked +det, next to PyTorch's default record).
  step "bench lcam deterministic" 60 "$OUT/bench-lcam.jsonl" "$OUT/bench.log" \
    ./lcam bench --arch vgg16,resnet50 --device cuda --work train-img --batch 64 \
    --deterministic --iters 5 --warmup 2 --json
  step "bench lcam bf16 graph" 60 "$OUT/bench-lcam.jsonl" "$OUT/bench.log" \
    ./lcam bench --arch vgg16,resnet50 --device cuda --work train-img --batch 64 --graph \
    --precision bf16 --iters 5 --warmup 2 --json
}

# ---- 3. CLI on the GPU: random VGG-16 weights, the sample photos ----------------------------
part_cli() {
  samples=shared/data/imagenet-sample
  if ls "$samples"/*.JPEG >/dev/null 2>&1; then
    step "cli init weights" 30 "$OUT/cli.log" "$OUT/cli.log" \
      ./lcam init --arch vgg16 --seed 0 --out /tmp/lcam-random-vgg16.h5
    # shellcheck disable=SC2046
    step "cli predict cuda" 40 "$OUT/cli.log" "$OUT/cli.log" \
      ./lcam predict --arch vgg16 --weights /tmp/lcam-random-vgg16.h5 --device cuda --topk 3 \
      --json $(ls "$samples"/*.JPEG)
  else
    printf '%-34s %-18s %5s  %s\n' "cli predict cuda" "SKIP(no samples)" "-" "" >>"$SUMMARY"
  fi
  # The main job on the GPU: the whole demo (scenes, labels, both L-CAM trainings, every method
  # evaluated, pictures) on the bundle's Fashion-MNIST subset; its table and times go to cli.log.
  if [ -d fashion-mnist ] && [ -f "$FIX_ROOT/weights/demo_vgg_scenes.h5" ]; then
    step "cli demo cuda" 150 "$OUT/cli.log" "$OUT/cli.log" \
      ./lcam demo --device cuda --fashion-mnist fashion-mnist \
      --weights "$FIX_ROOT/weights/demo_vgg_scenes.h5" --out /tmp/lcam-demo-gpu
  else
    printf '%-34s %-18s %5s  %s\n' "cli demo cuda" "SKIP(no data)" "-" "" >>"$SUMMARY"
  fi
}

# ---- 4. the rest of the test suite (CPU ops, models, loaders, CLI) -----------------------------
# The image suite is left out: it checks all 100 sample photos, the bundle carries twenty.
part_rest() {
  step "tests: all but cuda, image" 200 "$OUT/tests-rest.log" "$OUT/tests-rest.log" \
    "${SUITE[@]}" --test-suite-exclude=cuda,image
}

# ---- the parts, in the order asked ------------------------------------------------------------
for part in ${PARTS//,/ }; do
  case "$part" in
    tests | core | maps | cli | rest) "part_$part" ;;
    *) printf '%-34s %-18s %5s  %s\n' "part $part" "SKIP(unknown)" "-" "" >>"$SUMMARY" ;;
  esac
done

# ---- summary ---------------------------------------------------------------------------------
total=$(($(date +%s) - START))
passed=$(grep -c ' PASS ' "$SUMMARY")
failed=$(grep -c -E ' (FAIL|TIMEOUT)' "$SUMMARY")
{
  echo "---"
  skipped=$(grep -c 'SKIP(no time)' "$SUMMARY")
  echo "total ${total}s; $passed passed, $failed failed or timed out, $skipped skipped for time"
  [ "$skipped" -gt 0 ] && echo "skipped for time: run their parts again (./gpu-check.sh OUT PARTS; GPU_CHECK_BUDGET=seconds)"
  # Without a usable device every CUDA case skips and every GPU benchmark fails: say why once.
  nodev=$(grep -h -o -m1 'skipped (no CUDA device: [^)]*)' "$OUT"/tests-cuda.log 2>/dev/null | head -n 1)
  [ -n "$nodev" ] && echo "NO CUDA DEVICE: the CUDA suite was ${nodev}; the GPU steps above could not run"
  # The runner's closing lines (counts, then each case that did not pass), else doctest's own.
  for part in cuda rest; do
    log=$OUT/tests-$part.log
    [ -f "$log" ] || continue  # that part did not run in this call
    if grep -q '^run_suite: ' "$log" 2>/dev/null; then
      grep '^run_suite: ' "$log" | grep -v '^run_suite: restarting' | sed "s/^run_suite:/tests ($part):/"
    elif grep -q -E '^\[doctest\] (test cases|assertions)' "$log"; then
      echo "doctest ($part):  $(grep -E '^\[doctest\] (test cases|assertions)' "$log" | tr '\n' ' ')"
    fi
  done
  # lcam and PyTorch side by side, paired by model, work and batch (speed and memory ratios).
  if [ -s "$OUT/bench-lcam.jsonl" ] || [ -s "$OUT/bench-torch.jsonl" ]; then
    echo "---"
    timeout 30 "$PY" tools/bench_table.py "$OUT/bench-lcam.jsonl" "$OUT/bench-torch.jsonl" 2>&1
  fi
} >>"$SUMMARY"
echo "===== summary ($OUT) ====="
cat "$SUMMARY"
exit 0
