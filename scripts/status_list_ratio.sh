#!/usr/bin/env bash
# What the Token Status List costs issuance (issue 14): client_credentials and refresh throughput
# with status lists on and off, interleaved in one run (on, off, on, off, ...), each phase on a
# fresh PostgreSQL database with the release server pinned to one core and the load generator
# (examples/load.rs) on the other. Prints every pair's ratio on/off and the median ratio per
# workload; the target is a median >= 0.9. Only the ratios mean anything on a shared machine.
#
#   scripts/status_list_ratio.sh
#
# Knobs: LOAD_SL_PAIRS (3), LOAD_SL_SCENARIOS ("client-credentials refresh"), LOAD_WARMUP (3),
# LOAD_DURATION (10), LOAD_CC_CONCURRENCY (32), LOAD_RF_CONCURRENCY (32), LOAD_SL_PERF (a
# directory: `perf record -g` of the server in every phase goes there), plus those of
# scripts/bench_lib.sh (LOAD_SERVER_ENV applies to both sides).
set -euo pipefail
# shellcheck source=scripts/bench_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

PAIRS=${LOAD_SL_PAIRS:-3}
SCENARIOS=${LOAD_SL_SCENARIOS:-client-credentials refresh}
WARMUP=${LOAD_WARMUP:-3}
DURATION=${LOAD_DURATION:-10}
CC_CONCURRENCY=${LOAD_CC_CONCURRENCY:-32}
RF_CONCURRENCY=${LOAD_RF_CONCURRENCY:-32}
PERF_DIR=${LOAD_SL_PERF:-}
BASE_ENV=("${SERVER_EXTRA_ENV[@]}")

require_tools cargo taskset openssl psql curl jq awk ss
[[ -z $PERF_DIR ]] || require_tools perf

say "Building (release): tessera and the load generator"
cargo build --release --bin tessera --example load
TESSERA=$ROOT/target/release/tessera
LOAD=$ROOT/target/release/examples/load

# run_load SCENARIO: one timed run against the running server (a fresh client and user).
run_load() {
    local scenario=$1 client_json password concurrency perf_pid=
    client_json=$(admin_post /admin/clients \
        '{"grant_types":["client_credentials","password","refresh_token"],"scopes":["read"],"audiences":["https://api.example.com"]}')
    password=$(openssl rand -hex 16)
    new_user ratio-user "$password" read >/dev/null
    concurrency=$CC_CONCURRENCY
    [[ $scenario != refresh ]] || concurrency=$RF_CONCURRENCY
    if [[ -n $PERF_DIR ]]; then
        mkdir -p "$PERF_DIR"
        perf record -g -q -p "$SERVER_PID" -o "$PERF_DIR/$scenario-$MODE-$PAIR.data" 2>/dev/null &
        perf_pid=$!
    fi
    taskset -c "$CLIENT_CORE" "$LOAD" --url "$URL" --scope read --server-pid "$SERVER_PID" \
        --client-id "$(jq -er .client_id <<<"$client_json")" \
        --client-secret "$(jq -er .client_secret <<<"$client_json")" \
        --username ratio-user --password "$password" --scenario "$scenario" \
        --concurrency "$concurrency" --warmup "$WARMUP" --duration "$DURATION"
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid" 2>/dev/null || true
        wait "$perf_pid" 2>/dev/null || true
    fi
}

declare -A RATES
for scenario in $SCENARIOS; do
    for PAIR in $(seq "$PAIRS"); do
        for MODE in on off; do
            SERVER_EXTRA_ENV=("${BASE_ENV[@]}")
            [[ $MODE == on ]] || SERVER_EXTRA_ENV+=(TESSERA_STATUS_LIST=false)
            new_db tessera_ratio
            migrate "$NEW_DB"
            say "$scenario, pair $PAIR, status lists $MODE"
            start_server "$NEW_DB" "$scenario-$MODE-$PAIR"
            measure "run" "$WORK/$scenario-$MODE-$PAIR.txt" run_load "$scenario"
            kill -0 "$SERVER_PID" 2>/dev/null || die "the server died during the load"
            stop_server
            RATES[$scenario-$MODE-$PAIR]=$(field ok_rps "$WORK/$scenario-$MODE-$PAIR.txt")
            echo "  $MODE: ${RATES[$scenario-$MODE-$PAIR]}/s [$NOTE_run]"
        done
    done
done

say "Summary (revision $REVISION; status lists on vs off, interleaved; $(nproc --all) cores; $(date -u +%FT%TZ))"
for scenario in $SCENARIOS; do
    ratios=()
    line=""
    for PAIR in $(seq "$PAIRS"); do
        on=${RATES[$scenario-on-$PAIR]} off=${RATES[$scenario-off-$PAIR]}
        ratio=$(calc '%.3f' "$on / $off")
        ratios+=("$ratio")
        line+="${line:+, }$on/$off = $ratio"
    done
    median_ratio=$(printf '%s\n' "${ratios[@]}" | sort -g |
        awk '{ v[++n] = $1 } END { printf "%.3f", n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }')
    echo "$scenario: on/off per pair (tokens/s): $line; median ratio $median_ratio -- target >= 0.9: $(verdict "$median_ratio >= 0.9")"
done
