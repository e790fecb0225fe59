#!/usr/bin/env bash
# Runs buf (from the npm package @bufbuild/buf, installed into .tools/ on first use).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
buf="$tools/node_modules/.bin/buf"
if [ ! -x "$buf" ]; then
  mkdir -p "$tools"
  npm install --silent --no-audit --no-fund --prefix "$tools" @bufbuild/buf@1.50.0 >&2
fi
exec "$buf" "$@"
