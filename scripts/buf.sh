#!/usr/bin/env bash
# Runs buf (from the npm package @bufbuild/buf, installed into .tools/ on first use).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
version=1.75.0
launcher="$tools/node_modules/@bufbuild/buf/bin/buf"
if ! grep -qs "\"version\": \"$version\"" "$tools/node_modules/@bufbuild/buf/package.json"; then
  mkdir -p "$tools"
  npm install --silent --no-audit --no-fund --prefix "$tools" "@bufbuild/buf@$version" >&2
fi
# Through node: the launcher's mode bits are not always kept by npm.
exec node "$launcher" "$@"
