#!/usr/bin/env bash
# Makes what a client test needs to talk to wfm with TLS and tokens, in DIR:
#   ca.pem                 a throwaway CA the client trusts
#   server.pem server.key  a server certificate for 127.0.0.1 and localhost, signed by it
#   admin.token reader.token   bearer tokens (from `wfm token create`)
#   wfm.toml               server config: [tls] with the certificate, [auth] with the tokens
# Usage: scripts/tls-test-setup.sh DIR   (WFM_BIN: the wfm binary, default target/release/wfm)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:?usage: tls-test-setup.sh DIR}"
wfm="${WFM_BIN:-$root/target/release/wfm}"
mkdir -p "$dir"
cd "$dir"

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=wfm test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
key server.key
openssl req -new -key server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
  "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
  -days 2 -extfile server.ext 2>/dev/null
rm -f server.csr server.ext ca.srl

: > tokens
for role in admin reader; do
  out="$("$wfm" token create --role "$role" --id "$role" 2>/dev/null)"
  head -n1 <<<"$out" > "$role.token"
  sed -n 2p <<<"$out" >> tokens
done
cat > wfm.toml <<TOML
store = "memory"
[auth]
tokens_file = "$PWD/tokens"
[tls]
cert = "$PWD/server.pem"
key = "$PWD/server.key"
TOML
