#!/usr/bin/env bash
# The POST /token load measurement, in one command: the release server on a fresh PostgreSQL
# database, pinned to one core (taskset -c 0), the load generator (examples/load.rs) pinned to
# the other (taskset -c 1), and the bare single-core rates it is compared with measured in the
# same run (ES256 signing with `openssl speed`, argon2id verification with the argon2 crate).
# The machines are shared and noisy: read the ratios, not the absolute figures.
#
#   scripts/load.sh
#
# Needs cargo, PostgreSQL that lets user postgres in without a password (LOAD_PG_URL, default
# postgres://postgres@127.0.0.1:5432), at least 2 cores, and taskset, openssl, psql, curl, jq.
# Knobs (environment): LOAD_WARMUP, LOAD_DURATION (seconds per phase, default 3 and 10),
# LOAD_CC_CONCURRENCY (32), LOAD_PW_CONCURRENCY (4: one user, under its 5 logins in flight), LOAD_BURST_CONCURRENCY (256),
# LOAD_SERVER_CORE (0), LOAD_CLIENT_CORE (1), LOAD_REVISION (the label in the summary).
# The scratch database, the server and the CPU accounting come from scripts/bench_lib.sh; unlike
# the two later scripts, this one does not wait for a quiet machine or measure a phase again.
set -euo pipefail
# shellcheck source=scripts/bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

WARMUP=${LOAD_WARMUP:-3}
DURATION=${LOAD_DURATION:-10}
CC_CONCURRENCY=${LOAD_CC_CONCURRENCY:-32}
PW_CONCURRENCY=${LOAD_PW_CONCURRENCY:-4}
BURST_CONCURRENCY=${LOAD_BURST_CONCURRENCY:-256}
SAMPLER_PID=

require_tools cargo taskset openssl psql curl jq awk ss paste

# The memory sampler runs beside the password phases; it stops before bench_lib's cleanup.
stop_sampler() {
    if [[ -n $SAMPLER_PID ]]; then
        kill "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
    fi
    SAMPLER_PID=
}
cleanup_load() {
    local rc=$?
    set +e
    stop_sampler
    # bench_lib's cleanup reads the script's exit status from $?.
    (exit "$rc")
    cleanup
}
trap cleanup_load EXIT

# ---------------------------------------------------------------------------------------------
say "Building (release): tessera and the load generator"
cargo build --release --bin tessera --example load
TESSERA=$ROOT/target/release/tessera
LOAD=$ROOT/target/release/examples/load

new_db tessera_load
DB=$NEW_DB
say "PostgreSQL: fresh database $DB (dropped at the end)"

say "Starting target/release/tessera serve, pinned to core $SERVER_CORE (taskset -c $SERVER_CORE), TESSERA_LOG_LEVEL=$LOG_LEVEL"
start_server "$DB" token

say "Admin API: a confidential client and a user"
CLIENT_JSON=$(admin_post /admin/clients \
    '{"grant_types":["client_credentials","password"],"scopes":["read"],"audiences":["https://api.example.com"]}')
CLIENT_ID=$(jq -er .client_id <<<"$CLIENT_JSON")
CLIENT_SECRET=$(jq -er .client_secret <<<"$CLIENT_JSON")
USERNAME=load-user
PASSWORD=$(openssl rand -hex 16)
USER_JSON=$(new_user "$USERNAME" "$PASSWORD" read)
echo "client $CLIENT_ID, user $USERNAME ($(jq -er .id <<<"$USER_JSON"))"

COMMON=(--url "$URL" --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" --scope read
    --server-pid "$SERVER_PID")
TIMED=(--warmup "$WARMUP" --duration "$DURATION")

# Bare rates on the server's core while the server is idle.
say "Bare ES256 signing, one core: taskset -c $SERVER_CORE openssl speed -seconds 3 ecdsap256"
taskset -c "$SERVER_CORE" openssl speed -seconds 3 ecdsap256 2>/dev/null | tee "$WORK/openssl.txt" |
    grep -E 'sign/s|nistp256'
ES256_RATE=$(awk '/ecdsa \(nistp256\)/ { print $(NF - 1) }' "$WORK/openssl.txt")
[[ -n $ES256_RATE ]] || die "could not read the sign/s figure of openssl speed"

say "Bare argon2id verification, one thread: taskset -c $SERVER_CORE load --scenario argon2-bare"
taskset -c "$SERVER_CORE" "$LOAD" --scenario argon2-bare --warmup 1 --duration 5 |
    tee "$WORK/argon2.txt"
ARGON2_RATE=$(field ops_per_s "$WORK/argon2.txt")
ARGON2_CPU_RATE=$(field ops_per_cpu_s "$WORK/argon2.txt")

say "client_credentials at the maximum rate (concurrency $CC_CONCURRENCY, load on core $CLIENT_CORE)"
phase_begin
taskset -c "$CLIENT_CORE" "$LOAD" "${COMMON[@]}" "${TIMED[@]}" --scenario client-credentials \
    --concurrency "$CC_CONCURRENCY" | tee "$WORK/cc.txt"
phase_end cc
CC_RATE=$(field ok_rps "$WORK/cc.txt")
HALF_RATE=$(calc '%.0f' "$CC_RATE / 2")
[[ $HALF_RATE -ge 1 ]] || die "no client_credentials token was issued"

say "client_credentials at half the maximum rate: --rate $HALF_RATE (concurrency $CC_CONCURRENCY)"
phase_begin
taskset -c "$CLIENT_CORE" "$LOAD" "${COMMON[@]}" "${TIMED[@]}" --scenario client-credentials \
    --concurrency "$CC_CONCURRENCY" --rate "$HALF_RATE" | tee "$WORK/half.txt"
phase_end half

# Peak memory while passwords are hashed: VmHWM (the kernel's high-water mark) before and after,
# and VmRSS sampled every 50 ms.
HWM_BEFORE=$(kib VmHWM)
RSS_BEFORE=$(kib VmRSS)
(
    peak=0
    while kill -0 "$SERVER_PID" 2>/dev/null; do
        rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
        if [[ -n $rss && $rss -gt $peak ]]; then
            peak=$rss
            echo "$peak" >"$WORK/rss.peak"
        fi
        sleep 0.05
    done
) &
SAMPLER_PID=$!

say "password grant at the maximum rate (concurrency $PW_CONCURRENCY, load on core $CLIENT_CORE)"
phase_begin
taskset -c "$CLIENT_CORE" "$LOAD" "${COMMON[@]}" "${TIMED[@]}" --scenario password \
    --username "$USERNAME" --password "$PASSWORD" --concurrency "$PW_CONCURRENCY" |
    tee "$WORK/pw.txt"
phase_end pw
PW_RATE=$(field ok_rps "$WORK/pw.txt")
HWM_PW=$(kib VmHWM)

say "password burst: $BURST_CONCURRENCY simultaneous logins, no warm-up, 5 s (excess waits, then 503)"
phase_begin
taskset -c "$CLIENT_CORE" "$LOAD" "${COMMON[@]}" --scenario password \
    --username "$USERNAME" --password "$PASSWORD" --concurrency "$BURST_CONCURRENCY" \
    --warmup 0 --duration 5 >"$WORK/burst.txt" &
BURST_PID=$!
sleep 2.5
# Another endpoint during the burst: it must not starve.
HEALTH_MS=$(for _ in 1 2 3 4 5; do
    taskset -c "$CLIENT_CORE" curl -s -o /dev/null -w '%{time_total}\n' "$URL/.well-known/jwks.json"
done | awk '{ t = $1 * 1000; if (t > m) m = t } END { printf "%.1f", m }')
wait "$BURST_PID"
cat "$WORK/burst.txt"
phase_end burst
echo "  GET /.well-known/jwks.json during the burst: slowest of 5 took $HEALTH_MS ms"
HWM_BURST=$(kib VmHWM)
stop_sampler
RSS_PEAK=$(cat "$WORK/rss.peak" 2>/dev/null || echo "$RSS_BEFORE")

kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the load"
WARNINGS=$(grep -c . "$SERVER_ERR" || true)

# ---------------------------------------------------------------------------------------------
CC_RATIO=$(calc '%.1f' "100 * $CC_RATE / $ES256_RATE")
PW_RATIO=$(calc '%.1f' "100 * $PW_RATE / $ARGON2_RATE")
HALF_P99=$(field p99_ms "$WORK/half.txt")
CC_CPU_RATE=$(field ok_per_server_cpu_s "$WORK/cc.txt")
PW_CPU_RATE=$(field ok_per_server_cpu_s "$WORK/pw.txt")
CC_CPU_RATIO=$(calc '%.1f' "100 * $CC_CPU_RATE / $ES256_RATE")
PW_CPU_RATIO=$(calc '%.1f' "100 * $PW_CPU_RATE / $ARGON2_CPU_RATE")

say "Summary (revision $REVISION; release server on PostgreSQL, pinned to core $SERVER_CORE; load generator on core $CLIENT_CORE; TESSERA_LOG_LEVEL=$LOG_LEVEL; $(nproc --all) cores; $(date -u +%FT%TZ))"
printf '%s\n' \
    "client_credentials: $CC_RATE tokens/s = $CC_RATIO% of the bare single-core ES256 sign rate ($ES256_RATE sign/s, openssl speed) -- target >= 50%: $(verdict "$CC_RATIO >= 50")" \
    "  per CPU-second: $CC_CPU_RATE tokens per server CPU-second = $CC_CPU_RATIO% of the ES256 sign rate (openssl speed counts user CPU time too)" \
    "  CPU at max rate: $CPU_cc; at half rate: $CPU_half" \
    "  latency at max rate: p50 $(field p50_ms "$WORK/cc.txt") ms, p99 $(field p99_ms "$WORK/cc.txt") ms, max $(field max_ms "$WORK/cc.txt") ms" \
    "  p99 at half the max rate ($HALF_RATE req/s, achieved $(field rps "$WORK/half.txt")): $HALF_P99 ms (p50 $(field p50_ms "$WORK/half.txt"), max $(field max_ms "$WORK/half.txt")) -- target < 10 ms: $(verdict "$HALF_P99 < 10")" \
    "password: $PW_RATE logins/s = $PW_RATIO% of the bare argon2id rate ($ARGON2_RATE verifications/s, one thread) -- target >= 90%: $(verdict "$PW_RATIO >= 90")" \
    "  latency at max rate (concurrency $PW_CONCURRENCY): p50 $(field p50_ms "$WORK/pw.txt") ms, p99 $(field p99_ms "$WORK/pw.txt") ms; server minor page faults per login $(field server_faults_per_request "$WORK/pw.txt") (19 MiB of fresh memory = 4864)" \
    "  per CPU-second: $PW_CPU_RATE logins per server CPU-second = $PW_CPU_RATIO% of the bare argon2id rate per CPU-second ($ARGON2_CPU_RATE)" \
    "  CPU at max rate: $CPU_pw; during the burst: $CPU_burst" \
    "  burst of $BURST_CONCURRENCY: $(field ok_rps "$WORK/burst.txt") logins/s, non-2xx $(field statuses "$WORK/burst.txt"), transport errors $(field transport_errors "$WORK/burst.txt"); jwks during it: $HEALTH_MS ms max" \
    "server memory: VmRSS $(mib "$RSS_BEFORE") MiB before the password runs, peak VmRSS sampled during them $(mib "$RSS_PEAK") MiB; VmHWM $(mib "$HWM_BEFORE") -> $(mib "$HWM_PW") (password max rate) -> $(mib "$HWM_BURST") MiB (burst)" \
    "non-2xx / transport errors: cc max $(field statuses "$WORK/cc.txt")/$(field transport_errors "$WORK/cc.txt"), cc half $(field statuses "$WORK/half.txt")/$(field transport_errors "$WORK/half.txt"), password $(field statuses "$WORK/pw.txt")/$(field transport_errors "$WORK/pw.txt")" \
    "server log lines at level $LOG_LEVEL and above: $WARNINGS"
if [[ $WARNINGS -gt 0 ]]; then
    echo "  first of them:"
    head -n 5 "$SERVER_ERR" | cut -c1-300 | sed 's/^/    /'
fi
