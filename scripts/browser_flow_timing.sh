#!/usr/bin/env bash
# The cost of one browser sign-in (issue 16): authorize -> sign-in -> consent -> code -> token,
# timed per step with curl against a running server on a scratch PostgreSQL database, and what
# the database did for one flow (transactions, index scans, rows written, per table, from
# pg_stat_*). No assertion on time: a measurement to read, on a possibly shared machine.
#
# Usage: scripts/browser_flow_timing.sh [flows]   (default 20)
# Environment: TESSERA_BIN (target/release/tessera if built, else target/debug/tessera),
# FLOW_PG_URL (postgres://postgres@127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${1:-20}
PG=${FLOW_PG_URL:-postgres://postgres@127.0.0.1:5432}
BIN=${TESSERA_BIN:-$([ -x target/release/tessera ] && echo target/release/tessera || echo target/debug/tessera)}
[ -x "$BIN" ] || { echo "build $BIN first (cargo build --release)" >&2; exit 1; }
while read -r var; do unset "$var"; done < <(compgen -e | grep '^TESSERA_' || true)

DB=tessera_flow_$$
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
ADMIN=flow-admin:$(openssl rand -hex 16)
psql -q "$PG/postgres" -c "create database $DB"
cleanup() {
    [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    psql -q "$PG/postgres" -c "drop database if exists $DB with (force)" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

TESSERA_DATABASE_URL=$PG/$DB TESSERA_MASTER_KEY=$(openssl rand -base64 32) \
    TESSERA_LISTEN=127.0.0.1:$PORT TESSERA_LOG_LEVEL=warn \
    TESSERA_BOOTSTRAP_ADMIN_ID=${ADMIN%%:*} TESSERA_BOOTSTRAP_ADMIN_SECRET=${ADMIN#*:} \
    "$BIN" serve 2>"$WORK/server.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -fs "$URL/readyz" >/dev/null && break; sleep 0.1; done

api() { curl -fsS -u "$ADMIN" -H 'content-type: application/json' "$@"; }
api -X PUT "$URL/admin/roles/member" -d '{"scopes":["read","write"]}' >/dev/null
api -X POST "$URL/admin/users" -d '{"username":"dana","password":"dana long password","roles":["member"]}' >/dev/null
CLIENT=$(api -X POST "$URL/admin/clients" -d '{"name":"Timing","grant_types":["authorization_code"],"scopes":["read"],"audiences":["https://api.example.com"],"redirect_uris":["https://app.example.com/cb"],"public":true}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')

# One hidden field of the page in $1.
field() { python3 -c 'import html,re,sys; m=re.search(r"name=\"%s\" value=\"([^\"]*)\"" % sys.argv[2], open(sys.argv[1]).read()); print(html.unescape(m.group(1)) if m else "")' "$1" "$2"; }
# curl that appends "<step> <seconds>" to times.txt.
timed() { local step=$1; shift; curl -sS -o "$WORK/page.html" -D "$WORK/headers" -w "$step %{time_total}\n" "$@" >>"$WORK/times.txt"; }

flow() {
    local jar=$WORK/jar verifier challenge form
    rm -f "$jar"
    verifier=$(openssl rand -hex 32)
    challenge=$(printf %s "$verifier" | openssl dgst -sha256 -binary | basenc --base64url | tr -d '=')
    timed authorize -c "$jar" -b "$jar" -G "$URL/authorize" --data-urlencode response_type=code \
        --data-urlencode "client_id=$CLIENT" --data-urlencode redirect_uri=https://app.example.com/cb \
        --data-urlencode scope=read --data-urlencode state=s --data-urlencode "code_challenge=$challenge" \
        --data-urlencode code_challenge_method=S256
    form=(--data-urlencode response_type=code --data-urlencode "client_id=$CLIENT"
        --data-urlencode redirect_uri=https://app.example.com/cb --data-urlencode scope=read
        --data-urlencode state=s --data-urlencode "code_challenge=$challenge" --data-urlencode code_challenge_method=S256)
    timed sign_in -c "$jar" -b "$jar" -H 'origin: null' -H 'sec-fetch-site: same-origin' "$URL/sign-in" "${form[@]}" \
        --data-urlencode "csrf_token=$(field "$WORK/page.html" csrf_token)" --data-urlencode username=dana \
        --data-urlencode 'password=dana long password'
    timed consent -c "$jar" -b "$jar" -H 'origin: null' -H 'sec-fetch-site: same-origin' "$URL/consent" "${form[@]}" \
        --data-urlencode "csrf_token=$(field "$WORK/page.html" csrf_token)" \
        --data-urlencode "shown_scope=$(field "$WORK/page.html" shown_scope)" --data-urlencode decision=approve
    local code
    code=$(grep -i '^location:' "$WORK/headers" | sed -E 's/.*[?&]code=([^&]*).*/\1/' | tr -d '\r')
    timed token "$URL/token" -d grant_type=authorization_code -d "code=$code" \
        -d redirect_uri=https://app.example.com/cb -d "code_verifier=$verifier" -d "client_id=$CLIENT"
    grep -q access_token "$WORK/page.html" || { echo "flow failed: $(cat "$WORK/page.html")" >&2; exit 1; }
}

stats() {
    psql -qAt "$PG/$DB" -c "select coalesce(sum(idx_scan),0)+coalesce(sum(seq_scan),0), coalesce(sum(n_tup_ins),0), coalesce(sum(n_tup_upd),0), coalesce(sum(n_tup_del),0) from pg_stat_user_tables" \
        -c "select xact_commit from pg_stat_database where datname = current_database()"
}
per_table() {
    psql -qAt -F ' ' "$PG/$DB" -c "select relname, coalesce(idx_scan,0)+coalesce(seq_scan,0), n_tup_ins, n_tup_upd, n_tup_del from pg_stat_user_tables order by relname"
}

flow # warm-up (client cache, connections)
: >"$WORK/times.txt"
sleep 1.5; per_table >"$WORK/before"; stats >"$WORK/stats_before"
flow
sleep 1.5; per_table >"$WORK/after"; stats >"$WORK/stats_after"
: >"$WORK/times.txt"
for _ in $(seq 1 "$FLOWS"); do flow; done

echo "== $FLOWS flows, $BIN, PostgreSQL; median and p90 per step (ms)"
python3 - "$WORK/times.txt" <<'PY'
import statistics, sys
steps = {}
for line in open(sys.argv[1]):
    step, t = line.split(); steps.setdefault(step, []).append(float(t) * 1000)
flows = [sum(x) for x in zip(*steps.values())]
for step, ts in list(steps.items()) + [("whole flow", flows)]:
    ts.sort(); print(f"{step:>12}: median {statistics.median(ts):7.1f}  p90 {ts[int(len(ts)*0.9)-1]:7.1f}")
PY
echo "== one flow in the database (after a warm-up; the admin calls are before it)"
echo "scans, rows inserted, updated, deleted:"; paste -d' ' <(head -1 "$WORK/stats_before") <(head -1 "$WORK/stats_after") | awk -F'[ |]' '{printf "  %d scans, %d inserted, %d updated, %d deleted\n", $5-$1, $6-$2, $7-$3, $8-$4}'
echo "transactions committed: $(( $(tail -1 "$WORK/stats_after") - $(tail -1 "$WORK/stats_before") )) (includes this script's pg_stat reads)"
echo "per table (scans ins upd del):"
join "$WORK/before" "$WORK/after" | awk '{d1=$6-$2; d2=$7-$3; d3=$8-$4; d4=$9-$5; if (d1+d2+d3+d4) printf "  %-28s %3d %3d %3d %3d\n", $1, d1, d2, d3, d4}'
