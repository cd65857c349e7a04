# loadtest/embedded.sh, sourced by loadtest/smoke and loadtest/fuzz: starts innkeeper on
# the embedded default (private PostgreSQL and Redis in a temporary data directory, a free
# port) and stops it, with its private servers, when the sourcing script exits.
#
# After `start_innkeeper NAME`: $port is where it serves, $work a scratch directory,
# $INNKEEPER_BIN the binary (the debug build unless given). Every booking of these
# scripts goes through one guest token, so fair holds are off.

if [[ -z "${INNKEEPER_BIN:-}" ]]; then
  # The debug build `cargo test` has just made: at a low rate it is fast enough, and CI
  # need not compile the release profile as well.
  cargo build --quiet --bin innkeeper
  INNKEEPER_BIN="${CARGO_TARGET_DIR:-target}/debug/innkeeper"
fi

work=$(mktemp -d)
server_pid=
stop_server() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    # innkeeper stops its private servers on SIGTERM; give it time to do so cleanly.
    for _ in $(seq 60); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.5
    done
    wait "$server_pid" || true
  fi
  server_pid=
}
cleanup() {
  stop_server
  rm -rf "$work"
}
trap cleanup EXIT

# An HTTP status from 127.0.0.1 with bash alone (no curl on a bare CI image).
http_status() {
  local port=$1 path=$2 line
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  read -r _ line _ <&3 || line=
  exec 3>&-
  echo "$line"
}

start_innkeeper() {
  local name=$1
  export INNKEEPER_DATA_DIR="$work/data"
  # Every scenario books through one guest token: fair holds (3 pending per guest) would
  # turn all but its first three bookings away.
  export INNKEEPER_MAX_LIVE_HOLDS=0
  unset DATABASE_URL REDIS_URL
  # Port 0: the kernel picks a free port, and the log line "innkeeper is serving" names it.
  RUST_LOG=info INNKEEPER_LOG_FORMAT=text "$INNKEEPER_BIN" serve --bind 127.0.0.1:0 \
    >"$work/innkeeper.log" 2>&1 &
  server_pid=$!

  port=
  for _ in $(seq 240); do
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/innkeeper.log"; echo "$name: innkeeper exited"; exit 1; }
    port=$(sed -e 's/\x1b\[[0-9;]*m//g' -n -e 's/.*innkeeper is serving.*address=[0-9.]*:\([0-9]*\).*/\1/p' "$work/innkeeper.log" | tail -n1)
    if [[ -n "$port" && "$(http_status "$port" /readyz)" == 200 ]]; then
      break
    fi
    port=
    sleep 0.5
  done
  if [[ -z "$port" ]]; then
    cat "$work/innkeeper.log"
    echo "$name: innkeeper did not become ready within 2 minutes"
    exit 1
  fi
  echo "$name: innkeeper ready on 127.0.0.1:$port"
}
