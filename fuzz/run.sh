#!/usr/bin/env bash
# Runs the fuzz targets (cargo fuzz, libFuzzer) for SECONDS each:
#   bash fuzz/run.sh SECONDS [TARGET...]      (targets: prompt record extract)
#
# Installs cargo-fuzz (the version below) if missing. Builds without a
# sanitizer, which works on stable Rust: the code under test forbids
# `unsafe`, so what a sanitizer adds is not needed to find its bugs.
# Each target first replays its committed corpus (fuzz/corpus/TARGET, only
# read); new inputs go to a scratch folder. Memory is bounded per target
# (-rss_limit_mb), as is one input's size and time. A failure leaves the
# input in fuzz/artifacts/TARGET and fails the run: make it a regression
# test and add it to the corpus.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

CARGO_FUZZ_VERSION=0.13.2
secs=${1:?usage: bash fuzz/run.sh SECONDS [TARGET...]}
shift
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
    targets=(prompt record extract)
fi

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/chatcart-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

cargo fuzz build --sanitizer none
for target in "${targets[@]}"; do
    echo "==> fuzz $target for ${secs}s"
    mkdir -p "$scratch/$target"
    cargo fuzz run --sanitizer none "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -max_len=16384 -timeout=10 \
        -print_final_stats=1
done
