#!/usr/bin/env bash
# Builds the emulated CUDA driver and cuFFT (kernels/host/emulator.cpp, tests only) into
# target/emulated-gpu/ as libcuda.so and libcufft.so, and prints that directory. With it
# first on LD_LIBRARY_PATH (and NVRTC from the venv, as scripts/test.sh sets), cudarc
# loads it in place of the driver and the device backend's Rust code runs on the host:
#   EMU=$(bash scripts/emulated-gpu.sh)
#   LD_LIBRARY_PATH=$EMU:$LD_LIBRARY_PATH CONTIMG_EXPECT_GPU=1 cargo test --features gpu --lib compute::
# It checks the launch code, copies, chunking, the streams' synchronisation (work runs only
# when the host waits for it) and the images a GPU run makes; not the device's scheduling,
# memory model or arithmetic (see the file's head).
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/emulated-gpu
mkdir -p "$out"
# Rebuilt when any kernel or host source is newer than the library.
if [ ! -f "$out/libcuda.so" ] || [ -n "$(find kernels -newer "$out/libcuda.so" -type f | head -1)" ]; then
  ${CXX:-c++} -std=c++20 -O1 -ffp-contract=off -fPIC -shared -pthread -fvisibility=hidden \
    -o "$out/libcuda.so.tmp" kernels/host/emulator.cpp >&2
  mv "$out/libcuda.so.tmp" "$out/libcuda.so"
fi
ln -sf libcuda.so "$out/libcufft.so"
echo "$PWD/$out"
