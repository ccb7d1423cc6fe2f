# Source this: `moto_start` runs moto server (from ./.venv, through
# scripts/moto_server.py) on a free
# loopback port and exports AWS_ENDPOINT_URL and dummy credentials for it;
# `moto_stop` stops it. The AWS adapter tests use whatever
# AWS_ENDPOINT_URL names.

moto_start() {
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # moto's server with DynamoDB's atomic conditional writes kept (see
  # scripts/moto_server.py).
  mkdir -p target
  .venv/bin/python scripts/moto_server.py 127.0.0.1 "$port" >target/moto.log 2>&1 &
  MOTO_PID=$!
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  for _ in $(seq 1 100); do
    if curl -fsS "$AWS_ENDPOINT_URL/moto-api/" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
  done
  echo "moto server did not start; see target/moto.log" >&2
  return 1
}

moto_stop() {
  if [[ -n "${MOTO_PID:-}" ]]; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
}
