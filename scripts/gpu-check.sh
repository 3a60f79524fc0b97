#!/usr/bin/env bash
# On a GPU node: every GPU test and benchmark, the device required (a test that would skip
# without a device fails instead). Logs go to $LOGS (default ./gpu-check-logs).
#   bash scripts/gpu-check.sh                 # builds with cargo (--features gpu)
#   bash scripts/gpu-check.sh --prebuilt DIR  # binaries from scripts/gpu-bundle.sh, no cargo
# Steps: NVRTC compile of every kernel; the device-vs-CPU kernel, flagging and w-stacking
# tests; a simulated night through `contimg run` with gpu: required against gpu: off; the
# criterion gridding benches (CPU and gpu_*); one real-sized group (benches/group.sh), on the
# GPU and then on the CPU of the same node. STEPS=tests,night,bench,group picks some;
# STEP_TIMEOUT (s, default 1800) stops a step that hangs; BENCH_FILTER (default subband:
# CPU and GPU) picks criterion benches; GROUP_MODES (default "gpu cpu") the group runs.
set -uo pipefail
cd "$(dirname "$0")/.."
LOGS=${LOGS:-$PWD/gpu-check-logs}; mkdir -p "$LOGS"
STEPS=${STEPS:-tests,night,bench,group}
PREBUILT=""
[ "${1:-}" = --prebuilt ] && PREBUILT=$(cd "$2" && pwd)

# CUDA libraries: cudarc (built against the 12.x API) looks for libnvrtc.so / .so.12 and
# libcufft.so / .so.12 / .so.11; a CUDA 13 toolkit names NVRTC libnvrtc.so.13. Link what
# the node has under the names looked for (the driver is backward compatible).
links=$(mktemp -d)
for lib in nvrtc cufft; do
  # (grep reads everything: with pipefail, grep -q could stop ldconfig with SIGPIPE.)
  if ! ldconfig -p | grep "lib$lib.so " >/dev/null; then
    found=$(find /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib /usr/lib/x86_64-linux-gnu \
      /opt /usr/local/lib/python3*/dist-packages /usr/lib/python3/dist-packages \
      -name "lib$lib.so*" -not -path '*/stubs/*' 2>/dev/null | grep -v builtins | sort -V | tail -1)
    [ -n "$found" ] && ln -sf "$found" "$links/lib$lib.so" && \
      export LD_LIBRARY_PATH="$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "lib$lib: ${found:-not found}"
  fi
done
export LD_LIBRARY_PATH="$links${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CONTIMG_EXPECT_GPU=1 CONTIMG_REQUIRE_NVRTC=1 HDF5_USE_FILE_LOCKING=FALSE
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$LOGS/device.txt"

status=0
step() { # name, command...: runs and logs one step, remembering a failure
  local name=$1; shift
  echo "== $name"
  local t0=$(date +%s)
  timeout "${STEP_TIMEOUT:-1800}" "$@" > "$LOGS/$name.log" 2>&1; local rc=$?
  echo "   exit $rc after $(( $(date +%s) - t0 )) s (log: $LOGS/$name.log)"
  grep -E "^test result|SKIPPED|FAILED|panicked|^(gpu_)?[a-z_]+/|time: |groups/hour|rank 0|utilisation" "$LOGS/$name.log" | head -40
  [ $rc = 0 ] || status=1
}
if [ -n "$PREBUILT" ]; then
  export CONTIMG_BIN="$PREBUILT/contimg" LD_LIBRARY_PATH="$PREBUILT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  lib=("$PREBUILT/lib-tests"); night=("$PREBUILT/night-tests"); bench=("$PREBUILT/gridding-bench" --bench)
else
  cargo build --release --features gpu || exit 1
  lib=(cargo test --release --features gpu --lib --); night=(cargo test --release --features gpu --test night --)
  bench=(cargo bench --features gpu --bench gridding --)
fi
case ,$STEPS, in *,tests,*) step gpu-tests "${lib[@]}" --test-threads 1 --nocapture compute:: ;; esac
case ,$STEPS, in *,night,*) step night-gpu "${night[@]}" --nocapture gpu_required_matches_off_on_a_gpu ;; esac
case ,$STEPS, in *,bench,*) step gridding-bench "${bench[@]}" --sample-size 10 --warm-up-time 1 --measurement-time 5 "${BENCH_FILTER:-subband}" ;; esac
case ,$STEPS, in *,group,*)
  export WORK=${WORK:-$(mktemp -d)}
  for mode in ${GROUP_MODES:-gpu cpu}; do
    rm -rf "$WORK/out"
    step group-$mode env GPU=$([ $mode = gpu ] && echo required || echo off) RUST_LOG=${RUST_LOG:-contimg=debug} bash benches/group.sh
    grep -E "flagging steps|baseline pass|clean |stage|failed|WARN" "$WORK/log" | tee -a "$LOGS/group-$mode.log"
  done ;;
esac
exit $status
