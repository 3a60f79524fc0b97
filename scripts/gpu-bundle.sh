#!/usr/bin/env bash
# Builds the GPU check's binaries here for a GPU node that has no Rust toolchain (and no
# HDF5, CFITSIO or MPI): `contimg`, the library's tests, the night and calibration tests, the gridding
# bench and the read_group and compare_images examples, built with the `gpu` feature and without MPI (one rank
# needs no MPI install), stripped, with the shared libraries they need beyond the C runtime, packed into
# DIR/bundle.tar.xz. On the node: tar xf DIR/bundle.tar.xz -C DIR, then
# bash scripts/gpu-check.sh --prebuilt DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.gpubundle}
FEATURES=(--release --no-default-features --features gpu)
cargo build "${FEATURES[@]}" --quiet
cargo build "${FEATURES[@]}" --quiet --example read_group --example compare_images
json=$(cargo test "${FEATURES[@]}" --no-run --message-format=json --quiet 2>/dev/null)
bench_json=$(cargo bench --no-default-features --features gpu --bench gridding --no-run --message-format=json --quiet 2>/dev/null)
exe() { # the executable of a target of the given name and kind from cargo's JSON
  python3 -c "import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get('reason') == 'compiler-artifact' and m['target']['name'] == '$1' and '$2' in m['target']['kind'] and m.get('executable'): print(m['executable'])" | tail -1
}
stage=$(mktemp -d)
mkdir -p "$stage/lib"
cp target/release/contimg "$stage/contimg"
cp "$(exe contimg lib <<<"$json")" "$stage/lib-tests"
cp "$(exe night test <<<"$json")" "$stage/night-tests"
cp "$(exe calibration test <<<"$json")" "$stage/calibration-tests"
cp "$(exe gridding bench <<<"$bench_json")" "$stage/gridding-bench"
for ex in read_group compare_images; do cp "target/release/examples/$ex" "$stage/$ex"; done
bins=("$stage"/contimg "$stage"/*-tests "$stage"/gridding-bench "$stage"/read_group "$stage"/compare_images)
strip "${bins[@]}"
# Shared libraries beyond the C/C++ runtime, which the node has (newer or the same).
for f in "${bins[@]}"; do ldd "$f"; done |
  awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libgcc_s|libstdc\+\+|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' |
  while read -r l; do cp -L "$l" "$stage/lib/"; done
mkdir -p "$DIR"
tar -C "$stage" -cJf "$DIR/bundle.tar.xz" .
rm -rf "$stage"
ls -la "$DIR/bundle.tar.xz"
