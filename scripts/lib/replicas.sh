# shellcheck shell=bash
# Several manifold replicas behind a real load balancer, for the interop scripts'
# --replicas mode (sourced by scripts/interop and scripts/interop-clients).
#
# replicas_start DIR N BASE_CONFIG starts, all on 127.0.0.1:
#   * one redis-server (Debian's; a free port, no persistence, its files in DIR/redis/);
#   * N `manifold serve` processes on DIR/replicas.yaml: BASE_CONFIG (what a single
#     manifold of the same run is given) plus `redis:` naming that Redis and one
#     `seal_key` made for this cluster, so the replicas share everything the gateway
#     shares across replicas. Their output goes to DIR/replica-K.{stdout,stderr};
#   * HAProxy in front (DIR/haproxy.cfg): `mode http`, `balance roundrobin`, no
#     stickiness and no `prefer-last-server`, so every request, not every connection,
#     goes to the next replica. It logs one line per request to DIR/haproxy.log (which
#     replica served it, the status, the Mcp-Session-Id it carried).
# Then it proves the balancing (replicas_check_spread) and sets REPLICAS_URL to the
# balancer's MCP endpoint and REPLICA_URLS to the replicas' own.
#
# The caller provides: log and die; GROUPS_STARTED, the process groups its cleanup
# stops (every process here is started with setsid and added to it); STARTUP_TIMEOUT
# (seconds); GATEWAY, the manifold executable.

REDIS_SERVER=${REDIS_SERVER:-redis-server}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
REPLICAS_SPREAD_ROUNDS=4 # requests per replica sent to prove the round robin

# replicas_tools: dies unless redis-server and HAProxy are installed.
replicas_tools() {
    command -v "$REDIS_SERVER" >/dev/null ||
        die "redis-server is needed for --replicas (scripts/deps installs it)"
    [[ -x $HAPROXY ]] || command -v "$HAPROXY" >/dev/null ||
        die "HAProxy ($HAPROXY) is needed for --replicas (Debian package haproxy; scripts/deps installs it)"
    command -v curl >/dev/null || die "curl is needed for --replicas"
}

replicas_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# replicas_spawn OUT ERR CMD...: CMD in a process group of its own, output to the
# files OUT and ERR; sets REPLICAS_PID.
replicas_spawn() {
    local out=$1 err=$2
    shift 2
    : >"$out"
    : >"$err"
    setsid "$@" </dev/null >"$out" 2>"$err" &
    REPLICAS_PID=$!
    GROUPS_STARTED+=("$REPLICAS_PID")
}

# replicas_wait PID FILE REGEX: waits until FILE has a line matching the sed -E REGEX
# (one group) and sets REPLICAS_MATCH to that group. Returns 1 when PID exits or
# STARTUP_TIMEOUT passes first.
replicas_wait() {
    local pid=$1 file=$2 regex=$3 deadline=$((SECONDS + STARTUP_TIMEOUT))
    REPLICAS_MATCH=
    while :; do
        REPLICAS_MATCH=$(sed -nE "s#^$regex\$#\\1#p" "$file" | head -n 1 || true)
        [[ -n $REPLICAS_MATCH ]] && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# replicas_redis DIR: a fresh redis-server on a free loopback port; sets REDIS_URL.
# A port free a moment ago may be taken by the time Redis binds it: a few tries.
replicas_redis() {
    local dir=$1/redis port attempt
    mkdir -p "$dir"
    for attempt in 1 2 3 4 5; do
        port=$(replicas_free_port)
        replicas_spawn "$dir/redis.stdout" "$dir/redis.stderr" "$REDIS_SERVER" \
            --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$dir" \
            --daemonize no --protected-mode yes --databases 1 --loglevel notice
        if replicas_wait "$REPLICAS_PID" "$dir/redis.stdout" '.*(Ready) to accept connections.*'; then
            REDIS_URL=redis://127.0.0.1:$port/0
            return 0
        fi
        echo "redis-server did not start on port $port (attempt $attempt):" >&2
        tail -n 5 "$dir/redis.stdout" "$dir/redis.stderr" >&2 || true
        kill -KILL -- "-$REPLICAS_PID" 2>/dev/null || true
    done
    die "redis-server did not start (see ${dir#"$ROOT"/}/)"
}

# replicas_ready BASE_URL: polls BASE_URL/readyz until 200 (every upstream ready), as
# a load balancer's readiness probe would before sending traffic.
replicas_ready() {
    local url=$1/readyz deadline=$((SECONDS + STARTUP_TIMEOUT))
    until [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$url" || true) == 200 ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# replicas_haproxy DIR: HAProxy on a free loopback port in front of REPLICA_URLS; sets
# REPLICAS_URL.
replicas_haproxy() {
    local dir=$1 port attempt i url servers=()
    for i in "${!REPLICA_URLS[@]}"; do
        url=${REPLICA_URLS[$i]#http://}
        servers+=("    server replica-$((i + 1)) ${url%%/*}")
    done
    for attempt in 1 2 3 4 5; do
        port=$(replicas_free_port)
        # Written by scripts/lib/replicas.sh. Every request goes to the next replica:
        # roundrobin without stickiness (no cookie, no stick table, no hash, no
        # prefer-last-server), and HTTP keep-alive is no exception (HAProxy balances each
        # request of a kept-alive client connection again). The long timeouts are for SSE
        # answers and GET streams, which may stay quiet for minutes.
        cat >"$dir/haproxy.cfg" <<EOF
global
    log stdout format raw local0 info
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 15m
    timeout server 15m
    timeout tunnel 1h
    timeout http-request 60s
    timeout http-keep-alive 60s

frontend mcp
    bind 127.0.0.1:$port
    # Which session each request carried and which method it named (2026-07-28
    # requests say so in a header), in its log line: {session|method}.
    http-request capture req.hdr(Mcp-Session-Id) len 100
    http-request capture req.hdr(Mcp-Method) len 40
    default_backend replicas

backend replicas
    balance roundrobin
$(printf '%s\n' "${servers[@]}")
EOF
        "$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$dir/haproxy.check" 2>&1 ||
            die "HAProxy refuses ${dir#"$ROOT"/}/haproxy.cfg: $(cat "$dir/haproxy.check")"
        # -db: in the foreground, in this process group; the log goes to its stdout.
        replicas_spawn "$dir/haproxy.log" "$dir/haproxy.stderr" "$HAPROXY" -db -f "$dir/haproxy.cfg"
        local deadline=$((SECONDS + STARTUP_TIMEOUT)) code=
        while kill -0 "$REPLICAS_PID" 2>/dev/null && ((SECONDS < deadline)); do
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$port/healthz" || true)
            [[ $code == 200 ]] && break
            sleep 0.1
        done
        if [[ $code == 200 ]]; then
            REPLICAS_URL=http://127.0.0.1:$port/mcp
            return 0
        fi
        echo "HAProxy did not start on port $port (attempt $attempt):" >&2
        tail -n 5 "$dir/haproxy.stderr" >&2 || true
        kill -KILL -- "-$REPLICAS_PID" 2>/dev/null || true
    done
    die "HAProxy did not start (see ${dir#"$ROOT"/}/haproxy.stderr)"
}

# replicas_requests URL: the stateless server/discover requests URL's replica counted
# (manifold_requests_total, every outcome).
replicas_requests() {
    curl -s --max-time 5 "${1%/mcp}/metrics" |
        awk '/^manifold_requests_total\{.*method="server\/discover"/ { n += $NF } END { print n + 0 }'
}

# replicas_check_spread DIR: the proof that the balancer sends each request, not each
# connection, to the next replica: REPLICAS_SPREAD_ROUNDS x N stateless requests
# (server/discover) sent by one curl over one kept-alive connection must be counted
# REPLICAS_SPREAD_ROUNDS times by every replica. Writes DIR/spread.txt; dies if not.
replicas_check_spread() {
    local dir=$1 n=${#REPLICA_URLS[@]} i counted_before=() counted_after=() total=$((REPLICAS_SPREAD_ROUNDS * ${#REPLICA_URLS[@]}))
    for i in "${!REPLICA_URLS[@]}"; do counted_before+=("$(replicas_requests "${REPLICA_URLS[$i]}")"); done
    local body='{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{
        "io.modelcontextprotocol/protocolVersion":"2026-07-28",
        "io.modelcontextprotocol/clientCapabilities":{},
        "io.modelcontextprotocol/clientInfo":{"name":"scripts/lib/replicas.sh","version":"0"}}}}'
    local urls=()
    for ((i = 0; i < total; i++)); do urls+=(-o /dev/null "$REPLICAS_URL"); done
    # One curl, the same URL again and again: curl keeps the connection alive between them.
    local connects
    connects=$(curl -s --max-time 30 -w '%{num_connects} %{http_code}\n' \
        -H 'content-type: application/json' -H 'accept: application/json, text/event-stream' \
        -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: server/discover' \
        --data-binary "$body" "${urls[@]}" || true)
    for i in "${!REPLICA_URLS[@]}"; do counted_after+=("$(replicas_requests "${REPLICA_URLS[$i]}")"); done
    local opened ok spread=() even=true
    opened=$(awk '{ n += $1 } END { print n + 0 }' <<<"$connects")
    ok=$(awk '$2 == 200 { n++ } END { print n + 0 }' <<<"$connects")
    for i in "${!REPLICA_URLS[@]}"; do
        spread+=("$((counted_after[i] - counted_before[i]))")
        ((counted_after[i] - counted_before[i] == REPLICAS_SPREAD_ROUNDS)) || even=false
    done
    echo "$total server/discover requests ($ok answered 200) over $opened client connection(s); counted by the $n replicas: ${spread[*]}" |
        tee "$dir/spread.txt"
    if ! $even || ((ok != total)); then
        die "the balancer did not send each request to the next replica (wanted $REPLICAS_SPREAD_ROUNDS each; see ${dir#"$ROOT"/}/haproxy.log)"
    fi
}

# replicas_start DIR N BASE_CONFIG: see the top of this file.
replicas_start() {
    local dir=$1 n=$2 base=$3 i
    replicas_redis "$dir"
    local seal_key
    seal_key=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
    {
        cat "$base"
        echo "# Added for $n replicas behind a load balancer (scripts/lib/replicas.sh)."
        echo "redis: \"$REDIS_URL\""
        echo "seal_key: \"$seal_key\""
    } >"$dir/replicas.yaml"
    # Only this file and the flags configure the replicas.
    local unset_manifold=() var
    while IFS= read -r var; do
        unset_manifold+=(-u "$var")
    done < <(compgen -e | grep '^MANIFOLD_' || true)
    REPLICA_URLS=()
    local pids=()
    for ((i = 1; i <= n; i++)); do
        replicas_spawn "$dir/replica-$i.stdout" "$dir/replica-$i.stderr" \
            env "${unset_manifold[@]}" "$GATEWAY" serve --config "$dir/replicas.yaml" --listen 127.0.0.1:0
        pids+=("$REPLICAS_PID")
    done
    for ((i = 1; i <= n; i++)); do
        replicas_wait "${pids[i - 1]}" "$dir/replica-$i.stdout" 'manifold listening on (http://127\.0\.0\.1:[0-9]+/mcp)' || {
            tail -n 20 "$dir/replica-$i.stderr" >&2 || true
            die "replica $i did not announce its address (see ${dir#"$ROOT"/}/replica-$i.stderr)"
        }
        REPLICA_URLS+=("$REPLICAS_MATCH")
    done
    for ((i = 1; i <= n; i++)); do
        replicas_ready "${REPLICA_URLS[i - 1]%/mcp}" ||
            die "replica $i not ready within ${STARTUP_TIMEOUT}s (see ${dir#"$ROOT"/}/replica-$i.stderr)"
    done
    replicas_haproxy "$dir"
    echo "$n replicas (${REPLICA_URLS[*]}) on $REDIS_URL behind HAProxy at $REPLICAS_URL"
    replicas_check_spread "$dir"
}

# replicas_errors DIR: how many lines each replica logged at WARN or ERROR, and what
# HAProxy saw, for a failure's context.
replicas_errors() {
    local dir=$1 file
    for file in "$dir"/replica-*.stderr; do
        [[ -f $file ]] || continue
        echo "  ${file#"$ROOT"/}: $(grep -cE ' (WARN|ERROR) ' "$file" || true) warning/error line(s)"
    done
    if [[ -f $dir/haproxy.log ]]; then
        echo "  ${dir#"$ROOT"/}/haproxy.log: $(wc -l <"$dir/haproxy.log") request(s); by status: $(
            awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^[0-9][0-9][0-9]$/ && $(i - 1) ~ /^[0-9-]+\/[0-9-]+\/[0-9-]+\/[0-9-]+\/[0-9+-]+$/) { s[$i]++; break } }
                 END { for (k in s) printf "%s %d  ", k, s[k] }' "$dir/haproxy.log"
        )"
    fi
}
