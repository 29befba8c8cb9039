#!/usr/bin/env bash
# The refresh-token benchmark (issue 5) in one command:
#
#  1. Set-up: a scratch database with Tessera's schema and 1M refresh tokens for pgbench
#     (benches/refresh_pgbench_setup.sql), and two server databases (`tessera migrate`, then
#     other sessions' tokens pre-filled with benches/refresh_fill.sql): 10 thousand and
#     10 million stored refresh tokens.
#  2. Rounds (LOAD_RF_ROUNDS, default 3), so the two table sizes and pgbench alternate and a
#     drift of the machine shows instead of passing for a difference:
#       - pgbench runs Tessera's rotation (benches/refresh.pgbench: the lookup, then begin;
#         select ... for update; update; insert; commit) with 32 and 64 clients, pinned to the
#         load generator's core, over TCP like the server;
#       - for each table size, the release server starts on its database pinned to one core
#         (taskset -c 0) and the refresh workload of examples/load.rs runs on the other (one
#         session per worker, each refreshing in a chain; the logins happen before the warm-up)
#         at the maximum rate; in the last round also at half the median maximum rate of that
#         size.
#     The figures compared are the medians over the rounds (these machines are noisy: identical
#     runs a minute apart differ by 30%).
#  3. A summary with the targets: refreshes/s >= 60% of the pgbench rate, p99 < 25 ms at half
#     the maximum rate, the rate unchanged within 15% between the two table sizes.
#
#   scripts/refresh_load.sh
#
# Needs cargo, PostgreSQL that lets user postgres in without a password, pgbench, at least 2
# cores, taskset, openssl, psql, curl, jq. Each phase waits for a quiet machine first and is
# measured again if a neighbour took CPU during it (scripts/bench_lib.sh). Knobs: LOAD_WARMUP,
# LOAD_DURATION (3, 10), LOAD_RF_CONCURRENCY (32 workers = sessions), LOAD_RF_ROUNDS (3),
# LOAD_RF_SMALL_TOKENS (10000), LOAD_RF_LARGE_TOKENS (10000000), LOAD_PGBENCH_TOKENS (1000000),
# LOAD_PGBENCH_CLIENTS ("32 64"), LOAD_PGBENCH_DURATION (10), LOAD_DB_POOL (unset: Tessera's
# default pool size), plus those of bench_lib.sh.
set -euo pipefail
# shellcheck source=scripts/bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

WARMUP=${LOAD_WARMUP:-3}
DURATION=${LOAD_DURATION:-10}
CONCURRENCY=${LOAD_RF_CONCURRENCY:-32}
ROUNDS=${LOAD_RF_ROUNDS:-3}
SMALL=${LOAD_RF_SMALL_TOKENS:-10000}
LARGE=${LOAD_RF_LARGE_TOKENS:-10000000}
PGB_TOKENS=${LOAD_PGBENCH_TOKENS:-1000000}
PGB_CLIENTS=${LOAD_PGBENCH_CLIENTS:-32 64}
PGB_DURATION=${LOAD_PGBENCH_DURATION:-10}
SIZES=(small large)
declare -A TOKENS=([small]=$SMALL [large]=$LARGE) DB FILL_S

require_tools cargo taskset openssl psql pgbench curl jq awk ss pgrep top paste

say "Building (release): tessera and the load generator"
cargo build --release --bin tessera --example load
TESSERA=$ROOT/target/release/tessera
LOAD=$ROOT/target/release/examples/load
[[ -z ${LOAD_DB_POOL:-} ]] || SERVER_EXTRA_ENV+=(TESSERA_DATABASE_MAX_CONNECTIONS="$LOAD_DB_POOL")

# ---------------------------------------------------------------------------------------------
say "Set-up: pgbench's scratch database, $PGB_TOKENS stored tokens (benches/refresh_pgbench_setup.sql)"
new_db tessera_pgbench
PGB_DB=$NEW_DB
T0=$(date +%s.%N)
psql -q -v tokens="$PGB_TOKENS" -f benches/refresh_pgbench_setup.sql "$PG_URL/$PGB_DB"
PGB_FILL_S=$(calc '%.0f' "$(date +%s.%N) - $T0")
echo "set up in $PGB_FILL_S s"
PGB_SESSIONS=$(((PGB_TOKENS + 4) / 5))
# Over the loopback the server connects in plain text unless its URL asks for TLS, and pgbench
# is run the same way (PGSSLMODE=disable); this line records what pgbench's connection used.
PGB_TLS=$(PGSSLMODE=${PGSSLMODE:-disable} psql -qAt "$PG_URL/$PGB_DB" -c "select coalesce((select version from pg_stat_ssl where pid = pg_backend_pid() and ssl), 'none')")

for size in "${SIZES[@]}"; do
    say "Set-up: the server database with ${TOKENS[$size]} stored refresh tokens ($size): tessera migrate, benches/refresh_fill.sql"
    new_db "tessera_refresh_$size"
    DB[$size]=$NEW_DB
    migrate "${DB[$size]}"
    T0=$(date +%s.%N)
    psql -q -v tokens="${TOKENS[$size]}" -f benches/refresh_fill.sql "$PG_URL/${DB[$size]}"
    FILL_S[$size]=$(calc '%.0f' "$(date +%s.%N) - $T0")
    echo "filled in ${FILL_S[$size]} s"
done

# ---------------------------------------------------------------------------------------------
# pgbench_run CLIENTS: the rotation transaction, output kept whole, the figures shown.
pgbench_run() {
    # Plain text over the loopback, as the server connects there (unless PGSSLMODE says otherwise).
    PGSSLMODE=${PGSSLMODE:-disable} taskset -c "$CLIENT_CORE" pgbench -n -M prepared -c "$1" -j 1 -T "$PGB_DURATION" \
        -D sessions="$PGB_SESSIONS" -f benches/refresh.pgbench "$PG_URL/$PGB_DB" 2>&1 |
        tee "$WORK/pgbench.full" | grep -E '^(number of (transactions|failed)|latency|tps|pgbench: error)' || true
}

# refresh_run SIZE ROUND [RATE]: the Tessera workload against the running server.
refresh_run() {
    local extra=()
    [[ -z ${3:-} ]] || extra=(--rate "$3")
    taskset -c "$CLIENT_CORE" "$LOAD" --url "$URL" --client-id "$CLIENT_ID" \
        --client-secret "$CLIENT_SECRET" --username "refresh-user-$2" --password "$PASSWORD" \
        --scope read --server-pid "$SERVER_PID" --scenario refresh --concurrency "$CONCURRENCY" \
        --warmup "$WARMUP" --duration "$DURATION" "${extra[@]}"
}

PGB_ROUND_RATES=()
declare -A PGB_LINES MAX_RATES STARTUPS RSS TLS
for round in $(seq "$ROUNDS"); do
    for clients in $PGB_CLIENTS; do
        [[ $clients -le 64 ]] || die "benches/refresh.pgbench keeps clients apart for at most 64 clients"
        say "Round $round: pgbench, $clients clients, $PGB_DURATION s, -M prepared, one thread on core $CLIENT_CORE"
        measure "pgb_${round}_$clients" "$WORK/pgbench-$round-$clients.txt" pgbench_run "$clients"
        cp "$WORK/pgbench.full" "$WORK/pgbench-$round-$clients.txt"
    done
    best=0
    for clients in $PGB_CLIENTS; do
        tps=$(awk '/^tps = / { printf "%.1f", $3 }' "$WORK/pgbench-$round-$clients.txt")
        [[ -n $tps ]] || die "pgbench gave no tps"
        lat=$(awk '/^latency average/ { print $4 }' "$WORK/pgbench-$round-$clients.txt")
        failed=$(awk '/^number of failed/ { print $5 }' "$WORK/pgbench-$round-$clients.txt")
        cpu="CPU_pgb_${round}_$clients" note="NOTE_pgb_${round}_$clients"
        PGB_LINES[$round]+="  round $round, $clients clients: $tps tps, latency avg $lat ms, failed ${failed:-?} [${!note}]; CPU: ${!cpu} (pgbench's backends exit before the end: not counted)"$'\n'
        if awk "BEGIN { exit !($tps > $best) }"; then best=$tps; fi
    done
    PGB_ROUND_RATES+=("$best")

    for size in "${SIZES[@]}"; do
        say "Round $round: Tessera with ${TOKENS[$size]} stored refresh tokens ($size)"
        start_server "${DB[$size]}" "$size-$round"
        STARTUPS[$size]+="${STARTUPS[$size]:+, }$STARTUP_S s"
        if [[ $round -eq 1 ]]; then
            TLS[$size]=$(psql -qAt "$PG_URL/postgres" -c "
                select count(*) || ' connections, TLS: ' || coalesce(string_agg(distinct coalesce(s.version, 'none'), ','), '-')
                from pg_stat_activity a join pg_stat_ssl s using (pid) where a.datname = '${DB[$size]}'")
        fi
        client_json=$(admin_post /admin/clients \
            '{"grant_types":["password","refresh_token"],"scopes":["read"],"audiences":["https://api.example.com"]}')
        CLIENT_ID=$(jq -er .client_id <<<"$client_json")
        CLIENT_SECRET=$(jq -er .client_secret <<<"$client_json")
        PASSWORD=$(openssl rand -hex 16)
        new_user "refresh-user-$round" "$PASSWORD" read >/dev/null
        echo "client $CLIENT_ID, user refresh-user-$round"

        say "Round $round, $size: refresh at the maximum rate ($CONCURRENCY sessions, load on core $CLIENT_CORE)"
        measure "max_${size}_$round" "$WORK/max-$size-$round.txt" refresh_run "$size" "$round"
        rate=$(field ok_rps "$WORK/max-$size-$round.txt")
        MAX_RATES[$size]+="${MAX_RATES[$size]:+ }$rate"

        if [[ $round -eq $ROUNDS ]]; then
            # shellcheck disable=SC2086 # a list of figures
            half=$(calc '%.0f' "$(median ${MAX_RATES[$size]}) / 2")
            [[ $half -ge 1 ]] || die "no refresh succeeded"
            printf -v "HALF_$size" '%s' "$half"
            say "Round $round, $size: refresh at half the median maximum rate: --rate $half"
            measure "half_$size" "$WORK/half-$size.txt" refresh_run "$size" "$round" "$half"
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the load"
        RSS[$size]="$(mib "$(kib VmRSS)")"
        cat "$SERVER_ERR" >>"$WORK/server-$size.log"
        stop_server
    done
done

# ---------------------------------------------------------------------------------------------
for size in "${SIZES[@]}"; do
    printf -v "TABLES_$size" '%s' "$(psql -qAt -F ' ' "$PG_URL/${DB[$size]}" -c "
        select count(*) || ' refresh tokens (' || pg_size_pretty(pg_total_relation_size('refresh_token'))
               || ' with indexes), ' || count(*) filter (where successor_ciphertext is not null)
               || ' still holding a sealed successor'
        from refresh_token")"
done
# shellcheck disable=SC2068
PGB_RATE=$(median ${PGB_ROUND_RATES[@]})

line_for() {
    local size=$1 last=$WORK/max-$1-$ROUNDS.txt half=$WORK/half-$1.txt rate ratio hp99 r
    # shellcheck disable=SC2086
    rate=$(median ${MAX_RATES[$size]})
    ratio=$(calc '%.1f' "100 * $rate / $PGB_RATE")
    hp99=$(field p99_ms "$half")
    local half_rate="HALF_$size" tables="TABLES_$size" hcpu="CPU_half_$size" hnote="NOTE_half_$size"
    echo "refresh, ${TOKENS[$size]} stored tokens ($size): $rate refreshes/s (median of rounds: ${MAX_RATES[$size]}) = $ratio% of the pgbench rate -- target >= 60%: $(verdict "$ratio >= 60")"
    for r in $(seq "$ROUNDS"); do
        local f=$WORK/max-$size-$r.txt cpu="CPU_max_${size}_$r" note="NOTE_max_${size}_$r"
        echo "  round $r at max rate ($CONCURRENCY sessions): $(field ok_rps "$f")/s, p50 $(field p50_ms "$f") ms, p99 $(field p99_ms "$f") ms, p99.9 $(field p999_ms "$f") ms, max $(field max_ms "$f") ms; $(field ok_per_server_cpu_s "$f") refreshes per server CPU-second; non-2xx $(field statuses "$f"), transport errors $(field transport_errors "$f"), bad answers $(field bad_answers "$f"), re-logins $(field relogins "$f") [${!note}]"
        echo "    CPU: ${!cpu}"
    done
    echo "  p99 at half the max rate (${!half_rate} req/s, achieved $(field rps "$half")): $hp99 ms (p50 $(field p50_ms "$half"), p99.9 $(field p999_ms "$half"), max $(field max_ms "$half"); non-2xx $(field statuses "$half"), transport errors $(field transport_errors "$half")) [${!hnote}] -- target < 25 ms: $(verdict "$hp99 < 25")"
    echo "    CPU: ${!hcpu}"
    echo "  pre-fill ${FILL_S[$size]} s; server's PostgreSQL pool after start-up: ${TLS[$size]}; server start-ups ${STARTUPS[$size]}; server VmRSS after the last run ${RSS[$size]} MiB; at the end: ${!tables}; server log lines at warn and above: $(grep -c . "$WORK/server-$size.log" || true)"
}

# shellcheck disable=SC2086
SMALL_RATE=$(median ${MAX_RATES[small]})
# shellcheck disable=SC2086
LARGE_RATE=$(median ${MAX_RATES[large]})
CHANGE=$(calc '%.1f' "100 * ($LARGE_RATE - $SMALL_RATE) / $SMALL_RATE")

say "Summary (revision $REVISION; release server on PostgreSQL, pinned to core $SERVER_CORE; load generator and pgbench on core $CLIENT_CORE; TESSERA_LOG_LEVEL=$LOG_LEVEL; pool ${LOAD_DB_POOL:-default}; $(nproc --all) cores; $(date -u +%FT%TZ))"
echo "pgbench reference (benches/refresh.pgbench, $PGB_TOKENS stored tokens, set up in $PGB_FILL_S s; TLS to PostgreSQL: $PGB_TLS): $PGB_RATE tps (median over rounds of the better of $PGB_CLIENTS clients: ${PGB_ROUND_RATES[*]})"
for round in $(seq "$ROUNDS"); do printf '%s' "${PGB_LINES[$round]}"; done
line_for small
line_for large
echo "large vs small: $LARGE_RATE vs $SMALL_RATE refreshes/s = ${CHANGE}% -- target within 15%: $(verdict "${CHANGE#-} <= 15")"
for size in "${SIZES[@]}"; do
    if [[ -s $WORK/server-$size.log ]]; then
        echo "first server log lines ($size):"
        head -n 5 "$WORK/server-$size.log" | cut -c1-300 | sed 's/^/    /'
    fi
done
