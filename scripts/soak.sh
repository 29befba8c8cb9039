#!/usr/bin/env bash
# Memory under steady load (issue 17), in one command: the release server on a fresh PostgreSQL
# database, pinned to one core (taskset -c 0), and the `mixed` scenario of the load generator
# (examples/load.rs) pinned to the other (taskset -c 1) at a fixed total rate for a long time:
# client_credentials tokens, refresh chains, introspection of live tokens, revocations of access
# tokens and of refresh tokens (sessions) through POST /revoke, JWKS. The server's VmRSS and
# VmHWM are sampled into a CSV; the summary compares the RSS after the warm-up with the RSS at
# the end and with every minute in between (medians of a minute's samples: a login holds 19 MiB
# of argon2id memory for a moment), and counts the errors (there must be none).
#
#   scripts/soak.sh                       # 30 minutes at 800 req/s
#   SOAK_DURATION=300 scripts/soak.sh     # a short run while investigating
#
# Needs cargo, PostgreSQL that lets user postgres in without a password (LOAD_PG_URL), at least
# 2 cores, taskset, openssl, psql, curl, jq. Knobs (environment):
#   SOAK_RATE (800 req/s in all), SOAK_DURATION (1800 s), SOAK_CONCURRENCY (32 workers, each
#   with a session of its own), SOAK_SAMPLE_INTERVAL (10 s), SOAK_WARMUP (the RSS reference
#   point, seconds into the run: 300, or a third of a run shorter than 900 s),
#   SOAK_METRICS_SCRAPE (seconds between two GET /metrics, as a Prometheus would; 0, the
#   default: never), SOAK_ACCESS_TOKEN_TTL (120 s: revocations expire, and the state built
#   from them reaches its steady size, well within the warm-up), SOAK_CSV (where the samples are kept: target/soak/rss-<time>.csv),
#   LOAD_SERVER_ENV (extra server settings, e.g. `TESSERA_STATUS_LIST=false`), plus those of
#   scripts/bench_lib.sh. Unlike the throughput scripts, it does not wait for a quiet machine:
#   memory does not depend on neighbours, only the achieved rate may.
set -euo pipefail
# shellcheck source=scripts/bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

RATE=${SOAK_RATE:-800}
DURATION=${SOAK_DURATION:-1800}
CONCURRENCY=${SOAK_CONCURRENCY:-32}
INTERVAL=${SOAK_SAMPLE_INTERVAL:-10}
WARM=${SOAK_WARMUP:-$((DURATION >= 900 ? 300 : DURATION / 3))}
SCRAPE=${SOAK_METRICS_SCRAPE:-0}
TTL=${SOAK_ACCESS_TOKEN_TTL:-120}
CSV=${SOAK_CSV:-$ROOT/target/soak/rss-$(date -u +%Y%m%dT%H%M%SZ).csv}
SAMPLER_PID=
SCRAPER_PID=

require_tools cargo taskset openssl psql curl jq awk ss paste
[[ $DURATION -gt $WARM && $WARM -ge 0 ]] || die "SOAK_WARMUP ($WARM) must be below SOAK_DURATION ($DURATION)"

# The sampler and the scraper stop before bench_lib's cleanup.
stop_helpers() {
    for pid in $SAMPLER_PID $SCRAPER_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SAMPLER_PID=
    SCRAPER_PID=
}
cleanup_soak() {
    local rc=$?
    set +e
    stop_helpers
    # bench_lib's cleanup reads the script's exit status from $?.
    (exit "$rc")
    cleanup
}
trap cleanup_soak EXIT

# ---------------------------------------------------------------------------------------------
say "Building (release): tessera and the load generator"
cargo build --release --bin tessera --example load
TESSERA=$ROOT/target/release/tessera
LOAD=$ROOT/target/release/examples/load

# Short-lived tokens: the revocation state and the status-list rows reach their steady size
# (a lifetime + 60 s of skew + a minute between prunes) before the warm-up ends, then roll over
# again and again. LOAD_SERVER_ENV comes after, and wins.
SERVER_EXTRA_ENV=(TESSERA_ACCESS_TOKEN_TTL="$TTL" "${SERVER_EXTRA_ENV[@]}")

new_db tessera_soak
DB=$NEW_DB
say "PostgreSQL: fresh database $DB (dropped at the end)"

say "Starting target/release/tessera serve, pinned to core $SERVER_CORE, TESSERA_LOG_LEVEL=$LOG_LEVEL ${SERVER_EXTRA_ENV[*]}"
start_server "$DB" soak

say "Admin API: a client (client_credentials, password, refresh_token; may introspect) and a user"
CLIENT_JSON=$(admin_post /admin/clients \
    '{"grant_types":["client_credentials","password","refresh_token"],"scopes":["read"],"audiences":["https://api.example.com"],"introspect":true}')
CLIENT_ID=$(jq -er .client_id <<<"$CLIENT_JSON")
CLIENT_SECRET=$(jq -er .client_secret <<<"$CLIENT_JSON")
USERNAME=soak-user
PASSWORD=$(openssl rand -hex 16)
new_user "$USERNAME" "$PASSWORD" read >/dev/null
echo "client $CLIENT_ID, user $USERNAME"

# ---------------------------------------------------------------------------------------------
mkdir -p "$(dirname "$CSV")"
echo "elapsed_s,vmrss_kib,vmhwm_kib,server_cpu_s" >"$CSV"
T0=$(date +%s.%N)
(
    next=0
    while kill -0 "$SERVER_PID" 2>/dev/null; do
        now=$(date +%s.%N)
        elapsed=$(calc '%.0f' "$now - $T0")
        if [[ $elapsed -ge $next ]]; then
            rss=$(kib VmRSS)
            hwm=$(kib VmHWM)
            cpu=$(calc '%.1f' "$(proc_ticks "$SERVER_PID") / $HZ")
            [[ -z $rss ]] || echo "$elapsed,$rss,$hwm,$cpu" >>"$CSV"
            next=$((next + INTERVAL))
        fi
        sleep 0.5
    done
) &
SAMPLER_PID=$!
if [[ $SCRAPE -gt 0 ]]; then
    (
        while kill -0 "$SERVER_PID" 2>/dev/null; do
            sleep "$SCRAPE"
            curl -s -o /dev/null "$URL/metrics" || true
        done
    ) &
    SCRAPER_PID=$!
fi

say "mixed load: $RATE req/s for $DURATION s ($CONCURRENCY workers, load on core $CLIENT_CORE); VmRSS every $INTERVAL s into $CSV"
phase_begin
taskset -c "$CLIENT_CORE" "$LOAD" --url "$URL" --client-id "$CLIENT_ID" \
    --client-secret "$CLIENT_SECRET" --username "$USERNAME" --password "$PASSWORD" --scope read \
    --scenario mixed --rate "$RATE" --concurrency "$CONCURRENCY" --warmup 0 \
    --duration "$DURATION" --server-pid "$SERVER_PID" | tee "$WORK/soak.txt"
phase_end soak
# One last sample at the end of the load, whatever the interval.
echo "$(calc '%.0f' "$(date +%s.%N) - $T0"),$(kib VmRSS),$(kib VmHWM),$(calc '%.1f' "$(proc_ticks "$SERVER_PID") / $HZ")" >>"$CSV"
stop_helpers

kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the soak"
WARNINGS=$(grep -c . "$SERVER_ERR" || true)

# ---------------------------------------------------------------------------------------------
# The RSS (MiB) at T seconds: the median of the samples of the minute up to T (a single sample
# may catch a login's 19 MiB of argon2id memory, handed back a moment later).
rss_at() {
    awk -F, -v t="$1" 'NR > 1 && $1 > t - 60 && $1 <= t { print $2 / 1024 }' "$CSV" | sort -g |
        awk '{ v[++n] = $1 } END { if (n) printf "%.1f", n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}
# The per-minute medians after the warm-up, and the end.
END_S=$(awk -F, 'NR > 1 { t = $1 } END { print t }' "$CSV")
MEDIANS=()
for ((t = WARM; t <= END_S; t += 60)); do MEDIANS+=("$(rss_at "$t")"); done
RSS_WARM=${MEDIANS[0]}
RSS_END=$(rss_at "$END_S")
read -r RSS_MIN RSS_MAX < <(printf '%s\n' "${MEDIANS[@]}" "$RSS_END" | sort -g | sed -n '1p;$p' | paste -sd' ')
RAW_MAX=$(awk -F, -v t="$WARM" 'NR > 1 && $1 >= t && $2 > m { m = $2 } END { printf "%.1f", m / 1024 }' "$CSV")
HWM_END=$(awk -F, 'NR > 1 { v = $3 } END { printf "%.1f", v / 1024 }' "$CSV")
RATIO=$(calc '%.3f' "$RSS_END / $RSS_WARM")
MAX_RATIO=$(calc '%.3f' "$RSS_MAX / $RSS_WARM")
MIN_RATIO=$(calc '%.3f' "$RSS_MIN / $RSS_WARM")
# The slope of every sample after the warm-up (least squares), MiB per hour.
SLOPE=$(awk -F, -v t="$WARM" 'NR > 1 && $1 >= t { n++; x = $1 / 3600; y = $2 / 1024; sx += x; sy += y;
    sxx += x * x; sxy += x * y } END { d = n * sxx - sx * sx; printf "%.1f", (d > 0) ? (n * sxy - sx * sy) / d : 0 }' "$CSV")
POINTS=""
for t in 300 600 1200 1800 3600; do
    [[ $t -le $END_S ]] || continue
    POINTS+="$((t / 60)) min $(rss_at "$t") MiB, "
done
ERRORS=$(($(field non2xx "$WORK/soak.txt") + $(field transport_errors "$WORK/soak.txt") + $(field bad_answers "$WORK/soak.txt")))

say "Summary (revision $REVISION; release server on PostgreSQL, pinned to core $SERVER_CORE; load generator on core $CLIENT_CORE; TESSERA_LOG_LEVEL=$LOG_LEVEL ${SERVER_EXTRA_ENV[*]}; $(nproc --all) cores; $(date -u +%FT%TZ))"
printf '%s\n' \
    "load: mixed at $RATE req/s for $DURATION s: achieved $(field rps "$WORK/soak.txt") req/s, p50 $(field p50_ms "$WORK/soak.txt") ms, p99 $(field p99_ms "$WORK/soak.txt") ms, max $(field max_ms "$WORK/soak.txt") ms; 2xx by kind $(field ops "$WORK/soak.txt"); re-logins $(field relogins "$WORK/soak.txt")" \
    "  CPU: $CPU_soak" \
    "errors: non-2xx $(field non2xx "$WORK/soak.txt") ($(field statuses "$WORK/soak.txt")), transport $(field transport_errors "$WORK/soak.txt"), bad answers $(field bad_answers "$WORK/soak.txt") -- zero errors: $(verdict "$ERRORS == 0")" \
    "server VmRSS: $START_RSS MiB at start; ${POINTS}end $RSS_END MiB; VmHWM at the end $HWM_END MiB" \
    "  (each figure: the median of the minute's samples) after the warm-up (${WARM} s): $RSS_WARM MiB; end/warm-up $RATIO; per-minute max $RSS_MAX MiB ($MAX_RATIO), min $RSS_MIN MiB ($MIN_RATIO); largest single sample $RAW_MAX MiB; slope $SLOPE MiB/hour" \
    "  flat within 10% after the warm-up (every minute within 0.90-1.10 of it): $(verdict "$MAX_RATIO <= 1.10 && $MIN_RATIO >= 0.90")" \
    "samples: $CSV" \
    "server log lines at level $LOG_LEVEL and above: $WARNINGS"
if [[ $WARNINGS -gt 0 ]]; then
    echo "  first of them:"
    head -n 5 "$SERVER_ERR" | cut -c1-300 | sed 's/^/    /'
fi
