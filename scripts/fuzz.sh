#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/) for a bounded time, starting from the committed seed
# corpus in fuzz/corpus/<target>. New inputs the fuzzer finds go to a scratch directory, so
# the committed corpus only changes on purpose; a crash fails the run and leaves its input
# in fuzz/artifacts/<target>/ (add it as a regression test, see tests/fuzz_regressions.rs).
#   FUZZ_SECONDS     time per target (default 30)
#   FUZZ_SANITIZER   none (default: stable rustc with RUSTC_BOOTSTRAP=1, coverage-guided,
#                    a build that fits CI) or address (installs nightly; AddressSanitizer
#                    instruments every dependency, ~30 min to build on 2 cores)
# cargo-fuzz is installed, pinned, into .tools/. Safe Rust needs no sanitizer to find panics,
# hangs and runaway memory, which is what these targets look for.
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

sanitizer="${FUZZ_SANITIZER:-none}"
if [ "$sanitizer" != none ]; then
  rustup run nightly rustc --version >/dev/null 2>&1 \
    || rustup toolchain install nightly --profile minimal >/dev/null
  toolchain=(+nightly)
else
  toolchain=()
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
