# Sourced by the benchmark scripts: starts a host from $BIN on loopback with a
# fresh data directory, registers a verified organisation with a signing key
# and lists the unit converter without its rate limit (a load test would
# otherwise be answered with 429). Sets MERCATO_SERVER, KEY, DIR and PID;
# stops the host and removes DIR on exit. INVOKE_URL and INVOKE_LUA (a wrk
# script) make one free, authenticated invoke of the converter.
PORT="${MERCATO_BENCH_PORT:-18181}"
BIN="${BIN:-target/release/mercato}"
WASM=target/sample-agents/wasm32-wasip2/release
DIR=$(mktemp -d)
export MERCATO_SERVER="http://127.0.0.1:${PORT}"
MERCATO_ADMIN_TOKEN=bench "$BIN" serve --data-dir "$DIR/data" --listen "127.0.0.1:${PORT}" 2>"$DIR/host.log" &
PID=$!
trap 'kill -INT $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do curl -fsS "$MERCATO_SERVER/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
CREATED=$("$BIN" org create --name bench)
KEY=$(awk '/^api_key:/ {print $2}' <<<"$CREATED")
ORG=$(awk '/^org_id:/ {print $2}' <<<"$CREATED")
"$BIN" --admin-token bench org verify "$ORG" >/dev/null
"$BIN" keys generate --out "$DIR/bench.key" >/dev/null
"$BIN" --api-key "$KEY" keys register --key "$DIR/bench.key" >/dev/null
sed 's/rate_limit_per_minute = 600/rate_limit_per_minute = 0/' \
    sample-agents/unit-converter/mercato.toml >"$DIR/unthrottled.toml"
"$BIN" --api-key "$KEY" publish "$WASM/unit_converter.wasm" --key "$DIR/bench.key" \
    --manifest "$DIR/unthrottled.toml" >/dev/null
INVOKE_URL="$MERCATO_SERVER/v1/capabilities/unit-converter.convert/invoke"
INVOKE_LUA="$DIR/invoke.lua"
cat >"$INVOKE_LUA" <<LUA
wrk.method = "POST"
wrk.body = '{"input": {"value": 26.2, "from": "mi", "to": "km"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer ${KEY}"
LUA
