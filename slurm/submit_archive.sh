#!/usr/bin/env bash
# Submits an archive campaign: the array over NIGHTS_FILE (at most K nights at once) and
# the final summary after it. Extra arguments go to both sbatch calls (e.g. --partition).
# Prints the two job ids on stdout.
#   slurm/submit_archive.sh NIGHTS_FILE OUT_ROOT [K] [sbatch options...]
set -euo pipefail
NIGHTS_FILE=$(realpath "$1"); OUT_ROOT=$(realpath -m "$2"); K=${3:-8}; shift $(( $# < 3 ? $# : 3 ))
n=$(grep -c -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$NIGHTS_FILE" || true)
[ "$n" -gt 0 ] || { echo "no nights in $NIGHTS_FILE" >&2; exit 1; }
mkdir -p "$OUT_ROOT"
here=$(dirname "$(realpath "$0")")
# Jobs run in the current directory (their logs land there); CONTIMG and CONFIG default
# to the repository's binary and configs/default.yaml; ARCHIVE_SBATCH picks the task
# script (slurm/archive-gpu.sbatch on GPU partitions).
export CONTIMG=${CONTIMG:-$(dirname "$here")/target/release/contimg}
export CONFIG=${CONFIG:-$(dirname "$here")/configs/default.yaml}
array=$(sbatch --parsable --array=0-$((n - 1))%"$K" --export=ALL,NIGHTS_FILE="$NIGHTS_FILE",OUT_ROOT="$OUT_ROOT" "$@" "${ARCHIVE_SBATCH:-$here/archive.sbatch}")
summary=$(sbatch --parsable --dependency=afterany:"${array%%;*}" --export=ALL,OUT_ROOT="$OUT_ROOT" "$@" "$here/archive_summary.sbatch")
echo "array job $array ($n nights, $K at a time); summary job $summary -> $OUT_ROOT/archive_summary.txt" >&2
echo "$array $summary"
