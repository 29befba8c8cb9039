#!/usr/bin/env bash
# Schemathesis (from PyPI) against the server on a fresh PostgreSQL database, with
# Tessera's own OpenAPI document (GET /openapi.json), every check on (--checks all; see
# schemathesis.toml for what "accepted" means for the OAuth operations) and an admin client's
# credentials. Bounded in examples per operation and in time. Fails on any finding, and on a
# server that died or logged an error meanwhile. Run by .ci/run; by hand:
#
#   scripts/schemathesis.sh
#
# The client waits 20 s for an answer, longer than the server's own 15 s request timeout (after
# which it answers 503, a finding): a slow answer within the server's bound is not one. One
# secret rotation once took 13.7 s in a CI run on this 2-core machine, never reproduced.
#
# The server is the dev-profile build by default, the very binary `cargo test` has just built
# and run in CI, so this costs no second compile (a release build took ~5 of CI's 20 minutes). Its crypto (OpenSSL,
# argon2 at opt-level 3) runs at full speed; ST_PROFILE=release checks the release build instead.
#
# Knobs: ST_PROFILE (dev), ST_MAX_EXAMPLES (50), ST_MAX_TIME (seconds, 150), ST_SEED (1: CI is reproducible;
# change it to explore), ST_PG_URL
# (postgres://postgres@127.0.0.1:5432). Needs python3 (with venv), psql, curl, openssl.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SCHEMATHESIS_VERSION=4.32.5
VALIDATOR_VERSION=0.9.0
PG_URL=${ST_PG_URL:-postgres://postgres@127.0.0.1:5432}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-50}
MAX_TIME=${ST_MAX_TIME:-150}
VENV=$ROOT/target/schemathesis-venv
DB="tessera_st_$(date +%s)_$$"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-st.XXXXXX")
SERVER_PID=
DB_CREATED=

cleanup() {
    local rc=$?
    set +e
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID"
    fi
    if [[ -n $DB_CREATED ]]; then
        psql "$PG_URL/postgres" -qAt -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
    fi
    # The server's log stays for a look at what it saw (target/ is not committed).
    [[ -s $WORK/server.err ]] && cp "$WORK/server.err" "$ROOT/target/schemathesis-server.log"
    if [[ $rc -ne 0 && -s $WORK/server.err ]]; then
        echo "schemathesis.sh: failed (exit $rc); server log lines at warn and above:" >&2
        grep -E '"level":"(WARN|ERROR)"' "$WORK/server.err" | tail -n 20 >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT

if [[ ! -x $VENV/bin/openapi-spec-validator ]] || [[ ! -x $VENV/bin/schemathesis ]] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
        "openapi-spec-validator==$VALIDATOR_VERSION"
fi

PROFILE=${ST_PROFILE:-dev}
case $PROFILE in
    # The binary the test suite runs (built with the suite's feature set: a plain `cargo build`
    # would resolve features without the dev-dependencies and compile it a second time).
    dev) cargo test --locked --no-run; TESSERA=target/debug/tessera ;;
    release) cargo build --release --locked --bin tessera; TESSERA=target/release/tessera ;;
    *) echo "ST_PROFILE must be dev or release" >&2; exit 2 ;;
esac
psql "$PG_URL/postgres" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $DB" >/dev/null
DB_CREATED=1

# Tessera refuses unknown TESSERA_* variables; the server gets only the ones set here.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^TESSERA_' || true)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
ADMIN_ID=st-admin
ADMIN_SECRET=$(openssl rand -hex 24)
env TESSERA_DATABASE_URL="$PG_URL/$DB" \
    TESSERA_MASTER_KEY="$(openssl rand -base64 32)" \
    TESSERA_BOOTSTRAP_ADMIN_ID="$ADMIN_ID" \
    TESSERA_BOOTSTRAP_ADMIN_SECRET="$ADMIN_SECRET" \
    TESSERA_LISTEN="127.0.0.1:$PORT" \
    TESSERA_LOG_FORMAT=json \
    "$TESSERA" serve >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 300); do
    curl -sf -o /dev/null "$URL/readyz" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server exited during start-up" >&2; exit 1; }
    sleep 0.1
done
curl -sf -o "$WORK/openapi.json" "$URL/openapi.json"
# The document itself must be valid OpenAPI 3.1 before anything is generated from it.
"$VENV/bin/openapi-spec-validator" --schema 3.1 "$WORK/openapi.json"

# The bootstrap admin's secret is operator-chosen (argon2id on every request, and throttled):
# give schemathesis a generated one instead, and a client and a user to find.
SECRET=$(curl -sf -u "$ADMIN_ID:$ADMIN_SECRET" -X POST "$URL/admin/clients/$ADMIN_ID/secret" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])')
curl -sf -o /dev/null -u "$ADMIN_ID:$SECRET" -H 'content-type: application/json' \
    -d '{"client_id":"st-target","grant_types":["client_credentials"],"scopes":["read"],"audiences":["https://api.example.com"]}' \
    "$URL/admin/clients"

run_schemathesis() {
    ST_ADMIN_ID=$ADMIN_ID ST_ADMIN_SECRET=$SECRET \
        "$VENV/bin/schemathesis" --config-file schemathesis.toml run "$WORK/openapi.json" \
        --url "$URL" --checks all \
        --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --workers 2 \
        --request-timeout 20 \
        --seed "${ST_SEED:-1}" --suppress-health-check all 2>&1 | tee "$WORK/schemathesis.out"
}
# One retry, only for a crash of the tool itself with no finding: hypothesis describing a lambda
# under deep recursion sometimes trips CPython 3.11's AST recursion check ("AST constructor
# recursion depth mismatch"), which says nothing about the server. Any failure reported against
# the API is never retried.
if ! run_schemathesis; then
    if grep -q '= FAILURES =' "$WORK/schemathesis.out" ||
        ! grep -q 'AST constructor recursion depth mismatch' "$WORK/schemathesis.out"; then
        exit 1
    fi
    echo "schemathesis crashed inside hypothesis (no finding); running it once more" >&2
    run_schemathesis
fi

kill -0 "$SERVER_PID" 2>/dev/null || { echo "the server died during the run" >&2; exit 1; }
if grep -qE '"level":"ERROR"|panicked' "$WORK/server.err"; then
    echo "the server logged errors during the run:" >&2
    grep -E '"level":"ERROR"|panicked' "$WORK/server.err" | head -n 20 >&2
    exit 1
fi
echo "schemathesis: no findings; the server stayed up and logged no error"
