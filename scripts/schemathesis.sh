#!/usr/bin/env bash
# Fuzz the admin API and console routes of a real `timepost serve` from its
# own OpenAPI document with schemathesis: every generated request, valid or
# not, must get an answer below 500. Uses target/debug/timepost (built
# here when missing), a temporary directory with the sandbox config, its
# mappings and entries (so there is data to find), and the admin token the
# server prints on first start.
#
# SCHEMATHESIS_EXAMPLES (default 30) bounds the examples per operation;
# SCHEMATHESIS_SEED fixes the seed; SCHEMATHESIS_CHECKS replaces the checks
# (default not_a_server_error). Exits non-zero on any 5xx.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/target/debug/timepost
[[ -x $bin ]] || cargo build -p timepost-cli --locked
st=$root/.venv/bin/schemathesis
[[ -x $st ]] || ./scripts/pytools.sh

work=$(mktemp -d)
server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then
    kill -INT "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

cp examples/sandbox/timepost.toml "$work/"
(
  cd "$work"
  "$bin" mappings import "$root/examples/sandbox/mappings.csv" --reason "schemathesis data" >/dev/null
  "$bin" ingest --source csv "$root/examples/sandbox/entries.csv" >/dev/null
)

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$work/serve.log
: >"$out"
(cd "$work" && exec "$bin" serve --bind "127.0.0.1:$port") >"$out" 2>"$work/serve.err" &
server_pid=$!
token=
for _ in $(seq 1 100); do
  # serve never prints the token; it names the secrets file it wrote.
  if grep -q 'admin API token created in' "$out"; then
    token=$(sed -n 's/^admin_token *= *"\(tpa_[0-9a-f]*\)".*/\1/p' "$work/.timepost/secrets.toml" | head -1)
  fi
  if [[ -n $token ]] && curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done
if [[ -z $token ]]; then
  echo "timepost serve did not start or printed no admin token:" >&2
  cat "$out" "$work/serve.err" >&2
  exit 1
fi
echo "timepost serve on 127.0.0.1:$port"

args=(
  run "http://127.0.0.1:$port/openapi.json"
  --checks "${SCHEMATHESIS_CHECKS:-not_a_server_error}"
  --header "Authorization: Bearer $token"
  --max-examples "${SCHEMATHESIS_EXAMPLES:-30}"
  # One worker: with two, hypothesis parses lambda sources from two threads
  # and CPython 3.11's ast module can fail with "AST constructor recursion
  # depth mismatch" (python/cpython#106905), a tool error CI once reported
  # as a failure. Serial takes the same ~20 s here.
  --workers 1
  --no-color
  --report junit --report-dir "$root/target/schemathesis"
  --generation-database none
)
[[ -n ${SCHEMATHESIS_SEED:-} ]] && args+=(--seed "$SCHEMATHESIS_SEED")
status=0
"$st" "${args[@]}" "$@" || status=$?
if grep -q "panicked" "$work/serve.err"; then
  echo "the server panicked:" >&2
  grep -A3 "panicked" "$work/serve.err" >&2
  status=1
fi
exit $status
