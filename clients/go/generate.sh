#!/usr/bin/env bash
# Regenerates gen/ (the Go code of proto/workflow/v1) with buf and the local
# plugins protoc-gen-go and protoc-gen-go-grpc, built at the versions go.mod pins
# (its `tool` directive) into bin/. No system protoc. Safe to re-run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
GOBIN="$here/bin" go install tool
"$root/scripts/buf.sh" generate "$root" --template buf.gen.yaml
