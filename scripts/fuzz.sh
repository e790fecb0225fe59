#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for a bounded time, starting from the committed seed
# corpus in fuzz/corpus/<target>. New inputs the fuzzer finds go to a scratch directory, so
# the committed corpus only changes on purpose; a crash fails the run and leaves its input
# in fuzz/artifacts/<target>/ (add it as a regression test, see tests/fuzz_regressions.rs).
#   FUZZ_SECONDS     time per target (default 30)
#   FUZZ_SANITIZER   address (default with nightly) or none (faster to build: the whole
#                    crate graph is built again with coverage instrumentation either way)
# cargo-fuzz is installed, pinned, into .tools/. libFuzzer needs nightly rustc for its
# sanitizers; without a nightly toolchain the targets run without a sanitizer on stable
# (RUSTC_BOOTSTRAP=1), still with coverage guidance.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-30}"
tools="$PWD/.tools"
if ! "$tools/bin/cargo-fuzz" --version 2>/dev/null | grep -q " $CARGO_FUZZ_VERSION\$"; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION into .tools/"
  cargo install --locked --quiet --root "$tools" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
export PATH="$tools/bin:$PATH"

if rustup run nightly rustc --version >/dev/null 2>&1 \
  || rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
  toolchain=(+nightly)
  sanitizer="${FUZZ_SANITIZER:-address}"
else
  echo "note: no nightly toolchain; fuzzing on stable with RUSTC_BOOTSTRAP=1 and no sanitizer"
  toolchain=()
  sanitizer=none
  export RUSTC_BOOTSTRAP=1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in definition template; do
  echo "== fuzz $target for ${seconds}s ($sanitizer sanitizer)"
  mkdir -p "$scratch/$target"
  cargo "${toolchain[@]}" fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$target" \
    "$scratch/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
done
echo "fuzz: every target ran ${seconds}s without a crash"
