#!/usr/bin/env bash
# The introspection benchmark (issue 6) in one command: POST /introspect of one live ES256
# access token by a client created with "introspect": true, with the release server pinned to
# one core (taskset -c 0) and the load generator (examples/load.rs --scenario introspect) on the
# other, next to the bare single-core ES256 verify rate (`openssl speed ecdsap256` on the
# server's core) measured in the same run. Two server databases: one fresh, one holding
# 1 million revoked jtis inserted with SQL before the server starts (the server loads them into
# memory at start-up: start-up time, idle CPU and RSS are reported). Rounds (LOAD_IN_ROUNDS,
# default 3) alternate bare verify, no revocations and 1M revocations, so a drift of the
# machine shows instead of passing for a difference; the medians over the rounds are compared.
# Target: >= 50% of the bare verify rate, unchanged within 10% with 1M revoked jtis.
#
#   scripts/introspect_load.sh
#
# Needs cargo, PostgreSQL that lets user postgres in without a password, at least 2 cores,
# taskset, openssl, psql, curl, jq. Knobs: LOAD_WARMUP, LOAD_DURATION (3, 10),
# LOAD_IN_CONCURRENCY (32), LOAD_IN_REVOKED (1000000), LOAD_IN_ROUNDS (3), plus those of
# scripts/bench_lib.sh.
set -euo pipefail
# shellcheck source=scripts/bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

WARMUP=${LOAD_WARMUP:-3}
DURATION=${LOAD_DURATION:-10}
CONCURRENCY=${LOAD_IN_CONCURRENCY:-32}
REVOKED=${LOAD_IN_REVOKED:-1000000}
ROUNDS=${LOAD_IN_ROUNDS:-3}
CASES=(none revoked)
declare -A DB WHAT=([none]="no revocations" [revoked]="$REVOKED revoked jtis") RATES RUNS

require_tools cargo taskset openssl psql curl jq awk ss pgrep top paste

say "Building (release): tessera and the load generator"
cargo build --release --bin tessera --example load
TESSERA=$ROOT/target/release/tessera
LOAD=$ROOT/target/release/examples/load

say "Set-up: a fresh server database, and one with $REVOKED revoked jtis (tessera migrate, then SQL)"
new_db tessera_introspect_none
DB[none]=$NEW_DB
new_db tessera_introspect_revoked
DB[revoked]=$NEW_DB
migrate "${DB[revoked]}"
T0=$(date +%s.%N)
psql -qAt -v ON_ERROR_STOP=1 "$PG_URL/${DB[revoked]}" -c "
    insert into revocation (kind, value, revoked_at, expires_at, actor, created_at)
    select 'jti', md5(i::text), now(), now() + interval '1 hour', 'bench', now()
    from generate_series(1, $REVOKED) i" -c "vacuum (analyze) revocation" -c "checkpoint"
INSERT_S=$(calc '%.1f' "$(date +%s.%N) - $T0")
REVOCATION_TABLE=$(psql -qAt "$PG_URL/${DB[revoked]}" -c \
    "select count(*) || ' rows, ' || pg_size_pretty(pg_total_relation_size('revocation')) from revocation")
echo "inserted in $INSERT_S s (expiring in 1 hour): $REVOCATION_TABLE"

# bare_verify ROUND: ES256 sign/verify per second on the server's core, nothing of ours running.
bare_verify() {
    taskset -c "$SERVER_CORE" openssl speed -seconds 3 ecdsap256 2>/dev/null |
        tee "$WORK/openssl.full" | grep -E 'sign/s|nistp256'
}

# idle_cpu SECONDS: the server's CPU share while no request arrives (its background passes).
idle_cpu() {
    local s0 s1
    s0=$(proc_ticks "$SERVER_PID")
    sleep "$1"
    s1=$(proc_ticks "$SERVER_PID")
    calc '%.1f' "100 * ($s1 - $s0) / ($1 * $HZ)"
}

introspect_run() {
    taskset -c "$CLIENT_CORE" "$LOAD" --url "$URL" --client-id "$CLIENT_ID" \
        --client-secret "$CLIENT_SECRET" --scope read --server-pid "$SERVER_PID" \
        --scenario introspect --concurrency "$CONCURRENCY" --warmup "$WARMUP" \
        --duration "$DURATION"
}

VERIFY_RATES=()
SIGN_RATES=()
for round in $(seq "$ROUNDS"); do
    say "Round $round: bare ES256, one core: taskset -c $SERVER_CORE openssl speed -seconds 3 ecdsap256"
    measure "verify_$round" "$WORK/openssl-$round.txt" bare_verify
    VERIFY_RATES+=("$(awk '/ecdsa \(nistp256\)/ { print $NF }' "$WORK/openssl.full")")
    SIGN_RATES+=("$(awk '/ecdsa \(nistp256\)/ { print $(NF - 1) }' "$WORK/openssl.full")")
    [[ -n ${VERIFY_RATES[-1]} ]] || die "could not read the verify/s figure of openssl speed"

    for case in "${CASES[@]}"; do
        say "Round $round: Tessera, ${WHAT[$case]} ($case)"
        start_server "${DB[$case]}" "$case-$round"
        idle=$(idle_cpu 5)
        echo "server CPU while idle over 5 s: $idle% of one core"
        RUNS[$case]+="  round $round: start-up (launch to /readyz 200) $STARTUP_S s, VmRSS $START_RSS MiB after it; idle server CPU $idle% of one core"
        client_json=$(admin_post /admin/clients \
            '{"grant_types":["client_credentials"],"scopes":["read"],"audiences":["https://api.example.com"],"introspect":true}')
        CLIENT_ID=$(jq -er .client_id <<<"$client_json")
        CLIENT_SECRET=$(jq -er .client_secret <<<"$client_json")
        echo "introspecting client $CLIENT_ID"

        say "Round $round, $case: introspection at the maximum rate (concurrency $CONCURRENCY, load on core $CLIENT_CORE)"
        measure "in_${case}_$round" "$WORK/in-$case-$round.txt" introspect_run
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the load"
        f=$WORK/in-$case-$round.txt
        rate=$(field ok_rps "$f")
        RATES[$case]+="${RATES[$case]:+ }$rate"
        cpu="CPU_in_${case}_$round" note="NOTE_in_${case}_$round"
        RUNS[$case]+="; VmRSS $(mib "$(kib VmRSS)") MiB after the run (VmHWM $(mib "$(kib VmHWM)"))"$'\n'
        RUNS[$case]+="    $rate active answers/s = $(calc '%.1f' "100 * $rate / ${VERIFY_RATES[-1]}")% of this round's verify rate; p50 $(field p50_ms "$f") ms, p99 $(field p99_ms "$f") ms, p99.9 $(field p999_ms "$f") ms, max $(field max_ms "$f") ms; $(field ok_per_server_cpu_s "$f") answers per server CPU-second; non-2xx $(field statuses "$f"), transport errors $(field transport_errors "$f"), inactive answers $(field bad_answers "$f") [${!note}]"$'\n'
        RUNS[$case]+="    CPU: ${!cpu}"$'\n'
        cat "$SERVER_ERR" >>"$WORK/server-$case.log"
        stop_server
    done
done

# ---------------------------------------------------------------------------------------------
# shellcheck disable=SC2068
VERIFY=$(median ${VERIFY_RATES[@]})
# shellcheck disable=SC2068
SIGN=$(median ${SIGN_RATES[@]})
say "Summary (revision $REVISION; release server on PostgreSQL, pinned to core $SERVER_CORE; load generator on core $CLIENT_CORE; TESSERA_LOG_LEVEL=$LOG_LEVEL; $(nproc --all) cores; $(date -u +%FT%TZ))"
echo "bare ES256 on core $SERVER_CORE (openssl speed, once per round): verify ${VERIFY_RATES[*]} /s (median $VERIFY), sign ${SIGN_RATES[*]} /s (median $SIGN)"
for case in "${CASES[@]}"; do
    # shellcheck disable=SC2086
    rate=$(median ${RATES[$case]})
    ratio=$(calc '%.1f' "100 * $rate / $VERIFY")
    printf -v "RATE_$case" '%s' "$rate"
    echo "introspection, ${WHAT[$case]}: $rate active answers/s (median of rounds: ${RATES[$case]}) = $ratio% of the median bare single-core ES256 verify rate -- target >= 50%: $(verdict "$ratio >= 50")"
    printf '%s' "${RUNS[$case]}"
    echo "  server log lines at warn and above: $(grep -c . "$WORK/server-$case.log" || true)"
done
echo "revocation table: $REVOCATION_TABLE, inserted in $INSERT_S s"
CHANGE=$(calc '%.1f' "100 * ($RATE_revoked - $RATE_none) / $RATE_none")
echo "with vs without revoked jtis: $RATE_revoked vs $RATE_none answers/s = ${CHANGE}% -- target within 10%: $(verdict "${CHANGE#-} <= 10")"
for case in "${CASES[@]}"; do
    if [[ -s $WORK/server-$case.log ]]; then
        echo "first server log lines ($case):"
        head -n 5 "$WORK/server-$case.log" | cut -c1-300 | sed 's/^/    /'
    fi
done
