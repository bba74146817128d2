#!/usr/bin/env bash
# `make bench`: the http task's load engine side by side with wrk and oha against nginx on
# 127.0.0.1, server and client pinned to separate cores.
#
# Prints: req/s at 16 and 64 connections (three interleaved rounds, means) and the ratios
# ours/wrk and ours/oha; client CPU seconds per 10k requests; fixed-rate accuracy
# (achieved/target) at 1k, 10k and 50k req/s; the runner's peak RSS for a run of
# 10 million requests at max rate.
#
# Environment (to shorten a run):
#   BENCH_SECONDS=5           seconds per max-rate measurement
#   BENCH_ROUNDS=3            interleaved rounds
#   BENCH_RATE_SECONDS=10     seconds per fixed-rate measurement
#   BENCH_RSS_REQUESTS=10000000   requests of the peak-RSS run (0 skips it)
#   BENCH_NO_INSTALL=1        do not install missing tools
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
RATE_SECS=${BENCH_RATE_SECONDS:-10}
RSS_REQUESTS=${BENCH_RSS_REQUESTS:-10000000}
CONNS=(16 64)
RATES=(1000 10000 50000)

say() { echo "bench: $*" >&2; }

# ---- tools -----------------------------------------------------------------------------------
if [ -z "${BENCH_NO_INSTALL:-}" ]; then
  need=()
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
  [ -x /usr/bin/time ] || need+=(time)
  if [ "${#need[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null 2>&1 \
      || say "could not install ${need[*]} (continuing without what is missing)"
  fi
  if ! command -v oha >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/oha" ]; then
    say "installing oha (cargo install oha --locked; takes a few minutes)"
    cargo install oha --locked >/dev/null 2>&1 || say "could not install oha"
  fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { say "nginx is not available: cannot benchmark (install nginx-light)"; exit 1; }
WRK=$(command -v wrk || true)
OHA=$(command -v oha || { [ -x "$HOME/.cargo/bin/oha" ] && echo "$HOME/.cargo/bin/oha"; } || true)
[ -n "$WRK" ] || say "skipping wrk: not installed"
[ -n "$OHA" ] || say "skipping oha: not installed"
TIME=/usr/bin/time
[ -x "$TIME" ] || TIME=""

# ---- cores -----------------------------------------------------------------------------------
ncpu=$(nproc)
if [ "$ncpu" -ge 2 ]; then
  SERVER_CPU=0
  CLIENT_CPU=1
else
  SERVER_CPU=0
  CLIENT_CPU=0
  say "only one CPU: server and client share it"
fi
client() { taskset -c "$CLIENT_CPU" "$@"; }

# ---- our client (release build) --------------------------------------------------------------
say "building the bench driver (release)"
cargo build --release -q -p iter8 --example http_bench
OURS=target/release/examples/http_bench

# ---- nginx -----------------------------------------------------------------------------------
tmp=$(mktemp -d)
nginx_pid=""
cleanup() {
  if [ -s "$tmp/nginx.pid" ]; then kill "$(cat "$tmp/nginx.pid")" 2>/dev/null || true; fi
  if [ -n "$nginx_pid" ]; then kill "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18089)
mkdir -p "$tmp/logs"
cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $tmp/body;
  proxy_temp_path $tmp/proxy;
  fastcgi_temp_path $tmp/fastcgi;
  uwsgi_temp_path $tmp/uwsgi;
  scgi_temp_path $tmp/scgi;
  server {
    listen 127.0.0.1:$PORT reuseport backlog=4096;
    location / { default_type text/plain; return 200 "hello, iter8 bench\n"; }
  }
}
EOF
# taskset execs nginx, so $! is nginx itself (a shell function here would fork a subshell)
taskset -c "$SERVER_CPU" "$NGINX" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/logs/error.log" &
nginx_pid=$!
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
URL="http://127.0.0.1:$PORT/"
say "nginx on $URL (cpu $SERVER_CPU), clients on cpu $CLIENT_CPU"

# ---- measurements (each prints: rate requests cpu_seconds) -------------------------------------
field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2" | head -1; }

run_ours() { # conns qps num duration
  local out
  out=$(client "$OURS" "$URL" "$1" "$2" "$3" "$4" 2>/dev/null | tail -1)
  echo "$(field rate "$out") $(field requests "$out") $(field cpu_s "$out") $(field peak_rss_kib "$out") $(field elapsed_s "$out") $(field sys_s "$out")"
}

run_wrk() { # conns
  local out cpu sys
  if [ -n "$TIME" ]; then
    out=$(client "$TIME" -f "TIME %U %S" "$WRK" -t1 -c"$1" -d"${SECS}s" "$URL" 2>&1)
    cpu=$(awk '/^TIME/ {print $2 + $3}' <<<"$out")
    sys=$(awk '/^TIME/ {print $3}' <<<"$out")
  else
    out=$(client "$WRK" -t1 -c"$1" -d"${SECS}s" "$URL" 2>&1)
    cpu=nan
    sys=nan
  fi
  local rate reqs
  rate=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "${rate:-0} ${reqs:-0} ${cpu:-nan} ${sys:-nan}"
}

OHA_FMT="--output-format json"
if [ -n "$OHA" ] && ! "$OHA" --help 2>/dev/null | grep -q -- "--output-format"; then OHA_FMT="-j"; fi
run_oha() { # conns
  local out cpu sys
  if [ -n "$TIME" ]; then
    out=$(client "$TIME" -f "TIME %U %S" -o "$tmp/oha.time" "$OHA" --no-tui $OHA_FMT -z "${SECS}s" -c "$1" "$URL" 2>/dev/null)
    cpu=$(awk '/^TIME/ {print $2 + $3}' "$tmp/oha.time")
    sys=$(awk '/^TIME/ {print $3}' "$tmp/oha.time")
  else
    out=$(client "$OHA" --no-tui $OHA_FMT -z "${SECS}s" -c "$1" "$URL" 2>/dev/null)
    cpu=nan
    sys=nan
  fi
  local rate reqs
  rate=$(jq -r '.summary.requestsPerSec' <<<"$out" 2>/dev/null || echo 0)
  reqs=$(jq -r '[.statusCodeDistribution[]] | add' <<<"$out" 2>/dev/null || echo 0)
  echo "${rate:-0} ${reqs:-0} ${cpu:-nan} ${sys:-nan}"
}

declare -A RATE_SUM REQ_SUM CPU_SUM SYS_SUM N
add() { # key rate reqs cpu sys
  RATE_SUM[$1]=$(awk -v a="${RATE_SUM[$1]:-0}" -v b="$2" 'BEGIN {print a + b}')
  REQ_SUM[$1]=$(awk -v a="${REQ_SUM[$1]:-0}" -v b="$3" 'BEGIN {print a + b}')
  CPU_SUM[$1]=$(awk -v a="${CPU_SUM[$1]:-0}" -v b="$4" 'BEGIN {print a + b}')
  SYS_SUM[$1]=$(awk -v a="${SYS_SUM[$1]:-0}" -v b="$5" 'BEGIN {print a + b}')
  N[$1]=$(( ${N[$1]:-0} + 1 ))
}

for round in $(seq "$ROUNDS"); do
  for c in "${CONNS[@]}"; do
    say "round $round, $c connections: ours"
    read -r rate reqs cpu _ _ sys < <(run_ours "$c" 0 0 "${SECS}s")
    add "ours-$c" "$rate" "$reqs" "$cpu" "$sys"
    if [ -n "$WRK" ]; then
      say "round $round, $c connections: wrk"
      read -r rate reqs cpu sys < <(run_wrk "$c")
      add "wrk-$c" "$rate" "$reqs" "$cpu" "$sys"
    fi
    if [ -n "$OHA" ]; then
      say "round $round, $c connections: oha"
      read -r rate reqs cpu sys < <(run_oha "$c")
      add "oha-$c" "$rate" "$reqs" "$cpu" "$sys"
    fi
  done
done

mean() { awk -v s="${RATE_SUM[$1]:-0}" -v n="${N[$1]:-0}" 'BEGIN { if (n > 0) printf "%.0f", s / n; else print "-" }'; }
cpu10k() { awk -v c="${CPU_SUM[$1]:-0}" -v r="${REQ_SUM[$1]:-0}" 'BEGIN { if (r > 0 && c == c) printf "%.4f", c / r * 10000; else print "-" }'; }
kernel() { awk -v s="${SYS_SUM[$1]:-0}" -v c="${CPU_SUM[$1]:-0}" 'BEGIN { if (c > 0 && s == s) printf "%.0f%%", s / c * 100; else print "-" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0 && a + 0 > 0) printf "%.2fx", a / b; else print "-" }'; }

echo
echo "== max rate: req/s (mean of $ROUNDS rounds of ${SECS}s), client CPU s per 10k requests (kernel share) =="
printf "%-6s %10s %10s %10s %9s %9s %15s %15s %15s\n" conns ours wrk oha ours/wrk ours/oha cpu-ours cpu-wrk cpu-oha
for c in "${CONNS[@]}"; do
  o=$(mean "ours-$c"); w=$(mean "wrk-$c"); h=$(mean "oha-$c")
  printf "%-6s %10s %10s %10s %9s %9s %15s %15s %15s\n" "$c" "$o" "$w" "$h" "$(ratio "$o" "$w")" "$(ratio "$o" "$h")" \
    "$(cpu10k "ours-$c") ($(kernel "ours-$c"))" "$(cpu10k "wrk-$c") ($(kernel "wrk-$c"))" "$(cpu10k "oha-$c") ($(kernel "oha-$c"))"
done
echo "(on loopback, the kernel delivers each request into nginx's socket (TCP receive, softirq) on the"
echo " sending core, so that work is charged to the client: a floor the same for every client)"

echo
echo "== fixed rate: achieved/target over ${RATE_SECS}s (64 connections) =="
printf "%-10s %12s %12s %12s %10s %12s\n" target requests elapsed_s achieved ratio cpu-s/10k
for q in "${RATES[@]}"; do
  say "fixed rate $q req/s"
  read -r rate reqs cpu _ elapsed _ < <(run_ours 64 "$q" 0 "${RATE_SECS}s")
  printf "%-10s %12s %12s %12.1f %10s %12s\n" "$q" "$reqs" "$elapsed" "$rate" \
    "$(awk -v a="$rate" -v b="$q" 'BEGIN { printf "%.5f", a / b }')" \
    "$(awk -v c="$cpu" -v r="$reqs" 'BEGIN { if (r > 0) printf "%.4f", c / r * 10000; else print "-" }')"
done

if [ "$RSS_REQUESTS" != "0" ]; then
  echo
  echo "== peak RSS: $RSS_REQUESTS requests at max rate, 16 connections =="
  say "peak RSS run ($RSS_REQUESTS requests; BENCH_RSS_REQUESTS shortens it)"
  read -r rate reqs cpu rss _ _ < <(run_ours 16 0 "$RSS_REQUESTS" 0)
  printf "requests %s, req/s %.0f, cpu s %s, peak RSS %s KiB (%.1f MiB)\n" "$reqs" "$rate" "$cpu" "$rss" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')"
fi

