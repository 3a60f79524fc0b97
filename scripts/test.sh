#!/usr/bin/env bash
# The test suite: installs what is missing, checks formatting and lints (failing on any
# finding), then runs every test: unit, integration, multi-rank under mpirun, Measurement Set
# export, and a real single-node Slurm.
# Reference fixtures are committed; the MS export is also checked by independent tools
# (python-casacore, pyuvdata, WSClean) from a venv that scripts/python-env.sh makes.
set -euo pipefail
cd "$(dirname "$0")/.."
# Disk: a fresh test build takes ~2.5 GB in target/ and ~1 GB in .venv/ (2026-12-04). A full
# disk shows up late and obscurely (the linker dies with SIGBUS), so say so up front.
free_kb=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ "${free_kb:-0}" -lt $((5 * 1024 * 1024)) ]; then
  echo "warning: $((free_kb / 1024)) MB free on $(df -P . | awk 'NR == 2 { print $6 }'); the test build needs ~4 GB" >&2
fi
bash scripts/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CONTIMG_MS_PYTHON="$(bash scripts/python-env.sh)"
export CONTIMG_MS_PYTHON
# NVRTC from the venv: every kernel must compile for sm_80 and sm_90 (no GPU needed).
NVRTC_LIB=$("$CONTIMG_MS_PYTHON" -c "import nvidia.cuda_nvrtc, os; print(os.path.join(list(nvidia.cuda_nvrtc.__path__)[0], 'lib'))")
export LD_LIBRARY_PATH="$NVRTC_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" CONTIMG_REQUIRE_NVRTC=1
# ptxas from the venv: every kernel must fit a block of 1024 threads (registers, shared memory).
CONTIMG_PTXAS=$("$CONTIMG_MS_PYTHON" -c "import nvidia.cuda_nvcc, os; print(os.path.join(list(nvidia.cuda_nvcc.__path__)[0], 'bin', 'ptxas'))")
export CONTIMG_PTXAS CONTIMG_REQUIRE_PTXAS=1
# The kernels also run on the host through kernels/host/shim.h (g++ from scripts/setup.sh).
export CONTIMG_REQUIRE_HOST_KERNELS=1
# Tests that skip for want of a GPU or NVRTC log themselves here; the count is printed.
CONTIMG_SKIP_LOG=$(mktemp)
export CONTIMG_SKIP_LOG
# Lint gate, before any test: formatting (rustfmt.toml) and clippy with warnings as errors
# on every target; a finding fails CI.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
cargo fmt --check
cargo clippy --release --all-targets --features ms,gpu -- -D warnings
cargo test --release --features ms,gpu
echo "GPU tests skipped: $(grep -c . "$CONTIMG_SKIP_LOG" || true)"
sed 's/^/  skipped: /' "$CONTIMG_SKIP_LOG"
rm -f "$CONTIMG_SKIP_LOG"
unset CONTIMG_SKIP_LOG
# The GPU tests again, on the emulated driver (kernels/host/emulator.cpp): the device
# backend's Rust code and kernels run on the host, every device test must run, and a
# night's GPU run must make the CPU run's images (also with two ranks on one device and on
# two) and a calibrated night's the CPU's table; a group held on the device for CLEAN
# (imaging::held) must subtract and re-grid as on the host, and groups the reader holds
# ahead of the image loop must make the images of reading in line.
EMULATED_GPU=$(bash scripts/emulated-gpu.sh)
LD_LIBRARY_PATH="$EMULATED_GPU:$LD_LIBRARY_PATH" CONTIMG_EXPECT_GPU=1 \
  cargo test --release --features ms,gpu --lib -- compute:: imaging::held::tests::on_a_device flag::planes_tests imaging::clark::device_tests
LD_LIBRARY_PATH="$EMULATED_GPU:$LD_LIBRARY_PATH" CONTIMG_EXPECT_GPU=1 \
  cargo test --release --features ms,gpu --test night gpu_required_matches_off_on_a_gpu -- --nocapture
LD_LIBRARY_PATH="$EMULATED_GPU:$LD_LIBRARY_PATH" CONTIMG_EXPECT_GPU=1 \
  cargo test --release --features ms,gpu --test night ranks_share_a_device_or_spread_over_several -- --nocapture
LD_LIBRARY_PATH="$EMULATED_GPU:$LD_LIBRARY_PATH" CONTIMG_EXPECT_GPU=1 \
  cargo test --release --features ms,gpu --test night a_gpu_rank_holds_the_next_group_while_this_one_is_imaged -- --nocapture
LD_LIBRARY_PATH="$EMULATED_GPU:$LD_LIBRARY_PATH" CONTIMG_EXPECT_GPU=1 \
  cargo test --release --features ms,gpu --test calibration gpu_solution_equals_the_cpus -- --nocapture
# The GPU node's check itself (scripts/gpu-check.sh), rehearsed on the emulated driver with
# this build: its one-group runs on the device and the CPU, a night of three groups, its
# log filter and summary.json, which must say the device path ran (group and flagging
# planes held, subtractions and residual images there, nothing given up).
cargo build --release --features ms,gpu --quiet --example compare_images  # (cargo test builds it as a test)
prebuilt=$(mktemp -d); rehearsal=$(mktemp -d)
ln -s "$PWD/target/release/contimg" "$PWD/target/release/examples/compare_images" "$prebuilt/"
EMULATED=1 STEPS=group,groups LOGS="$rehearsal" bash scripts/gpu-check.sh --prebuilt "$prebuilt" >"$rehearsal/out.log" 2>&1 ||
  { tail -40 "$rehearsal/out.log"; exit 1; }
python3 - "$rehearsal/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ok = (s.get("group_held_on_device") == "1 of 1" and s.get("group_subtracted_on_device", 0) >= 1
      and s.get("flag_planes_held", 0) >= 1 and s.get("minor_cycles_images_held", 0) >= 1
      and s.get("night_groups") == 3 and "groups_per_hour" in s and "night_hold_ahead_s" in s
      and s.get("flagging_fell_back") == 0 and s.get("group_held_given_up") == 0
      and s.get("minor_cycles_images_lost") == 0
      and len(s.get("images_vs_cpu", {})) == 7 and max(s["images_vs_cpu"].values()) <= 2e-4)
print("gpu-check rehearsal on the emulated driver:", "ok" if ok else "FAILED", json.dumps(s))
sys.exit(0 if ok else 1)
PY
rm -rf "$prebuilt" "$rehearsal"
# Slurm: an archive array, its resubmission and a 2-rank night job on a real local Slurm.
bash tests/slurm/run.sh
cargo bench --no-run --quiet
