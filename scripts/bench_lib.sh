# Shared by scripts/load.sh, scripts/refresh_load.sh and scripts/introspect_load.sh (sourced,
# not run): scratch PostgreSQL databases dropped at exit, the release server started pinned to
# one core and stopped, CPU accounting per phase (the server, PostgreSQL, the whole machine, and
# neighbours: processes that are not part of the measurement), and measuring again when a
# neighbour (say, a test suite started meanwhile) took CPU during a phase.
#
# Environment: LOAD_PG_URL (postgres://postgres@127.0.0.1:5432), LOAD_SERVER_CORE (0),
# LOAD_CLIENT_CORE (1); LOAD_QUIET_WAIT (seconds to wait for neighbours to calm down before a
# phase, default 600; 0: do not wait) and LOAD_QUIET_BUSY (quiet: the machine used less than
# this many percent of one core over 2 s, default 30); LOAD_NEIGHBOUR_MAX (a phase during which
# neighbours used more than this many percent of one core is measured again, default 25) and
# LOAD_ATTEMPTS (at most this many times, default 3; the last one is kept either way);
# LOAD_SERVER_ENV (extra server settings, NAME=VALUE words: `TESSERA_STATUS_LIST=false` measures
# issuance without status lists).
# shellcheck disable=SC2034 # variables set here are read by the sourcing scripts

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PG_URL=${LOAD_PG_URL:-postgres://postgres@127.0.0.1:5432}
SERVER_CORE=${LOAD_SERVER_CORE:-0}
CLIENT_CORE=${LOAD_CLIENT_CORE:-1}
QUIET_WAIT=${LOAD_QUIET_WAIT:-600}
QUIET_BUSY=${LOAD_QUIET_BUSY:-30}
NEIGHBOUR_MAX=${LOAD_NEIGHBOUR_MAX:-25}
ATTEMPTS=${LOAD_ATTEMPTS:-3}
LOG_LEVEL=warn
SCRIPT=$(basename "$0")

say() { printf '\n== %s\n' "$*"; }
die() {
    printf '%s: %s\n' "$SCRIPT" "$*" >&2
    exit 1
}

require_tools() {
    for tool in "$@"; do
        command -v "$tool" >/dev/null || die "$tool is required"
    done
    [[ $(nproc --all) -ge 2 ]] || die "two cores are needed (server and load generator apart)"
}

# Tessera refuses unknown TESSERA_* variables; the server gets only the ones set here.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^TESSERA_' || true)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")
REVISION=${LOAD_REVISION:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo "not a git checkout")}
# One master key and one bootstrap admin for every database of a run: a database is used by
# several server starts, and an existing admin keeps the secret it was created with.
MASTER_KEY=$(openssl rand -base64 32)
ADMIN_ID=bench-admin
ADMIN_SECRET=$(openssl rand -hex 24)
ADMIN="$ADMIN_ID:$ADMIN_SECRET"
DATABASES=()
# Extra TESSERA_* settings of the next start_server (NAME=VALUE words).
read -r -a SERVER_EXTRA_ENV <<<"${LOAD_SERVER_ENV:-}"
SERVER_PID=
SERVER_ERR=

stop_server() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n $SERVER_PID ]]; then
        SERVER_EXIT=0
        wait "$SERVER_PID" 2>/dev/null || SERVER_EXIT=$?
        [[ $SERVER_EXIT -eq 0 ]] || echo "  (the server exited with status $SERVER_EXIT after SIGTERM)"
    fi
    SERVER_PID=
    return 0
}

cleanup() {
    local rc=$?
    set +e
    stop_server
    for db in "${DATABASES[@]}"; do
        psql "$PG_URL/postgres" -qAt -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null ||
            echo "$SCRIPT: could not drop database $db" >&2
    done
    if [[ $rc -ne 0 && -n $SERVER_ERR && -s $SERVER_ERR ]]; then
        echo "$SCRIPT: failed (exit $rc); last server log lines:" >&2
        tail -n 20 "$SERVER_ERR" >&2
    fi
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# new_db PREFIX: creates a fresh database (dropped at exit); its name in NEW_DB.
new_db() {
    NEW_DB="$1_$(date +%s)_$$_${#DATABASES[@]}"
    psql "$PG_URL/postgres" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $NEW_DB" >/dev/null
    DATABASES+=("$NEW_DB")
}

# field KEY FILE: the value of KEY=... on the RESULT line of a load-generator output.
field() {
    awk -v k="$1" '/^RESULT / { for (i = 2; i <= NF; i++) { n = index($i, "=");
        if (substr($i, 1, n - 1) == k) print substr($i, n + 1) } }' "$2"
}
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo "met"; else echo "NOT met"; fi; }
# mean and median of the arguments, %.1f
mean() { printf '%s\n' "$@" | awk '{ s += $1; n++ } END { printf "%.1f", n ? s / n : 0 }'; }
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[++n] = $1 } END { printf "%.1f", n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }'
}

free_port() {
    local port
    for _ in $(seq 200); do
        port=$((20000 + RANDOM % 40000))
        if ! ss -Htln "sport = :$port" | grep -q .; then
            echo "$port"
            return 0
        fi
    done
    return 1
}

# tessera_env DB: the settings of every tessera command of a run.
tessera_env() {
    printf '%s\n' "TESSERA_DATABASE_URL=$PG_URL/$1" "TESSERA_MASTER_KEY=$MASTER_KEY" \
        "TESSERA_LOG_LEVEL=$LOG_LEVEL" "TESSERA_LOG_FORMAT=json"
}

# migrate DB: `tessera migrate`, so the schema exists before it is filled.
migrate() {
    local settings
    mapfile -t settings < <(tessera_env "$1")
    env "${settings[@]}" "$TESSERA" migrate >"$WORK/migrate.out" 2>"$WORK/migrate.err" ||
        die "tessera migrate failed: $(tail -n 5 "$WORK/migrate.err")"
}

# start_server DB NAME: the release server on a free port, pinned to SERVER_CORE, with the
# bootstrap admin. Sets SERVER_PID, URL, STARTUP_S (launch to the first 200 from /readyz),
# START_RSS (MiB, just after) and SERVER_ERR (its log).
start_server() {
    local settings port i t0 t1
    mapfile -t settings < <(tessera_env "$1")
    port=$(free_port) || die "no free port found"
    URL=http://127.0.0.1:$port
    SERVER_ERR=$WORK/server-$2.err
    t0=$(date +%s.%N)
    env "${settings[@]}" "${SERVER_EXTRA_ENV[@]}" TESSERA_BOOTSTRAP_ADMIN_ID="$ADMIN_ID" \
        TESSERA_BOOTSTRAP_ADMIN_SECRET="$ADMIN_SECRET" TESSERA_LISTEN="127.0.0.1:$port" \
        taskset -c "$SERVER_CORE" "$TESSERA" serve >"$WORK/server-$2.out" 2>"$SERVER_ERR" &
    SERVER_PID=$!
    for i in $(seq 3000); do
        kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited during start-up"
        # The port is bound before the state is loaded: a probe may wait, hence --max-time.
        if curl -sf --max-time 2 -o /dev/null "$URL/readyz"; then break; fi
        [[ $i -lt 3000 ]] || die "the server was not ready within 150 s"
        sleep 0.05
    done
    t1=$(date +%s.%N)
    STARTUP_S=$(calc '%.2f' "$t1 - $t0")
    START_RSS=$(mib "$(kib VmRSS)")
    echo "ready after $STARTUP_S s (pid $SERVER_PID, $URL, affinity: $(taskset -pc "$SERVER_PID" | awk -F': ' '{print $2}'), VmRSS $START_RSS MiB)"
}

kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$SERVER_PID/status"; }
mib() { calc '%.1f' "$1 / 1024"; }

# admin_post PATH JSON: an admin API call; prints the answer, fails on a non-2xx.
admin_post() {
    curl -sS --fail-with-body -u "$ADMIN" -H 'content-type: application/json' -d "$2" "$URL$1"
}

# A user holding a role with these scopes (space-separated): `new_user NAME PASSWORD SCOPES`.
# A binary from before roles (issue 13) answers 404 to the role and gets a user without one,
# whose tokens then carry every scope of the client, as they did then.
new_user() {
    local role=bench-role body status
    body=$(jq -nc --arg s "$3" '{scopes: ($s | split(" "))}')
    status=$(curl -sS -o /dev/null -w '%{http_code}' -u "$ADMIN" -X PUT \
        -H 'content-type: application/json' -d "$body" "$URL/admin/roles/$role")
    case $status in
        200 | 201) body=$(jq -nc --arg u "$1" --arg p "$2" --arg r "$role" '{username: $u, password: $p, roles: [$r]}') ;;
        404) body=$(jq -nc --arg u "$1" --arg p "$2" '{username: $u, password: $p}') ;;
        *) die "PUT /admin/roles/$role answered $status" ;;
    esac
    admin_post /admin/users "$body"
}

# ---------------------------------------------------------------------------------------------
# CPU accounting per phase.
HZ=$(getconf CLK_TCK)
proc_ticks() {
    if [[ -n $1 ]] && [[ -r /proc/$1/stat ]]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi
}
# busy, total and stolen ticks of cpuN, or of the whole machine with "" (iowait counts as idle;
# steal, the time the hypervisor gave to other guests, as busy).
core_ticks() { awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t, $9 }' /proc/stat; }

# Our programs; everything else (but kernel threads) is a neighbour. PostgreSQL backends are
# ours when connected to one of our databases, or to none (the server's own processes).
OURS_RE='^(tessera|load|pgbench|bash|awk|gawk|sleep|curl|psql|taskset|tee|grep|cat|date|ss|top|openssl|jq|seq|sed|cut|head|tail|sort)$'
# snapshot FILE: "pid class ticks" of every process; class is pg (our PostgreSQL), ours,
# or other:COMM.
snapshot() {
    local dbs
    dbs=$(
        IFS='|'
        echo "${DATABASES[*]}"
    )
    # Files are read with getline: a process may exit between the glob and the read.
    awk -v ours="$OURS_RE" -v dbs="^(${dbs:-none})$" '
        BEGIN {
            for (a = 1; a < ARGC; a++) {
                file = ARGV[a]
                s = ""
                ok = (getline s < file) > 0
                close(file)
                if (!ok) continue
                p = 0
                while ((q = index(substr(s, p + 1), ")")) > 0) p += q
                o = index(s, "(")
                comm = substr(s, o + 1, p - o - 1)
                split(substr(s, p + 2), f, " ")
                pid = file; sub("^/proc/", "", pid); sub("/stat$", "", pid)
                if (f[2] == 2 || pid == 2) continue   # kernel threads
                class = "other:" comm
                if (comm ~ ours) class = "ours"
                else if (comm == "postgres") {
                    class = "pg"
                    line = ""
                    cmd = "/proc/" pid "/cmdline"
                    RS = "\0"
                    # A backend: "postgres: 15/main: USER DATABASE HOST(PORT) STATE".
                    if ((getline line < cmd) > 0 && line ~ /^postgres: [^:]+: [^ ]+ [^ ]+ ([^ ]*\(|\[local\])/) {
                        split(line, w, " ")
                        if (w[4] !~ dbs) class = "other:postgres(" w[4] ")"
                    }
                    close(cmd)
                    RS = "\n"
                }
                print pid, class, f[12] + f[13]
            }
        }' /proc/[0-9]*/stat 2>/dev/null || true
}
# deltas BEFORE AFTER: "class ticks" per class over the interval (a process started meanwhile
# counts from zero; one that exited meanwhile is lost).
deltas() {
    awk 'NR == FNR { t0[$1] = $3; next }
         { d = $3 - ($1 in t0 ? t0[$1] : 0); if (d > 0) sum[$2] += d }
         END { for (c in sum) print c, sum[c] }' "$1" "$2"
}

phase_begin() {
    snapshot >"$WORK/snap0"
    P_T0=$(date +%s.%N)
    P_S0=$(proc_ticks "$SERVER_PID")
    read -r P_B0 P_A0 _ < <(core_ticks "$SERVER_CORE")
    read -r P_M0 P_N0 P_ST0 < <(core_ticks "")
}
# phase_end NAME: prints the CPU shares since phase_begin, keeps the line in CPU_<NAME> and the
# neighbours' share (percent of one core) in PHASE_NEIGHBOURS.
phase_end() {
    local t1 s1 b1 a1 m1 n1 st1 wall pg others top line
    t1=$(date +%s.%N)
    s1=$(proc_ticks "$SERVER_PID")
    read -r b1 a1 _ < <(core_ticks "$SERVER_CORE")
    read -r m1 n1 st1 < <(core_ticks "")
    snapshot >"$WORK/snap1"
    deltas "$WORK/snap0" "$WORK/snap1" >"$WORK/deltas"
    wall=$(calc '%.3f' "$t1 - $P_T0")
    pg=$(awk '$1 == "pg" { print $2 }' "$WORK/deltas")
    others=$(awk '$1 ~ /^other:/ { s += $2 } END { print s + 0 }' "$WORK/deltas")
    top=$(awk -v w="$wall" -v hz="$HZ" '$1 ~ /^other:/ { printf "%s %.0f%%\n", substr($1, 7), 100 * $2 / (w * hz) }' \
        "$WORK/deltas" | sort -k2 -nr | head -n 3 | paste -sd, - | sed 's/,/, /g')
    PHASE_NEIGHBOURS=$(calc '%.0f' "100 * $others / ($wall * $HZ)")
    line=$(calc 'server %.0f%%, PostgreSQL %.0f%% (of one core; backends that exited are not counted); core %s busy %.0f%%; machine busy %.0f%% of %d cores (steal %.1f%%); neighbours %.0f%% of one core' \
        "100 * ($s1 - $P_S0) / ($wall * $HZ), 100 * ${pg:-0} / ($wall * $HZ), \"$SERVER_CORE\", 100 * ($b1 - $P_B0) / ($a1 - $P_A0 + 1e-9), 100 * ($m1 - $P_M0) / ($n1 - $P_N0 + 1e-9), $(nproc --all), 100 * ($st1 - $P_ST0) / ($n1 - $P_N0 + 1e-9), $PHASE_NEIGHBOURS")
    [[ -z $top ]] || line+=" ($top)"
    printf -v "CPU_$1" '%s' "$line"
    echo "  CPU over the phase incl. warm-up: $line"
}

# How much of one core the machine used over 2 s (all cores together, in percent).
machine_busy() {
    local b0 a0 b1 a1
    read -r b0 a0 _ < <(core_ticks "")
    sleep 2
    read -r b1 a1 _ < <(core_ticks "")
    calc '%.0f' "100 * ($b1 - $b0) / (($a1 - $a0 + 1e-9) / $(nproc --all))"
}

# wait_quiet: waits (up to LOAD_QUIET_WAIT s) until the machine uses less than LOAD_QUIET_BUSY %
# of one core. Call it while nothing of ours runs (the server idle).
wait_quiet() {
    local busy waited=0
    busy=$(machine_busy)
    while [[ $busy -ge $QUIET_BUSY && $waited -lt $QUIET_WAIT ]]; do
        [[ $waited -eq 0 ]] && echo "  (machine busy: ${busy}% of one core; waiting up to ${QUIET_WAIT} s)"
        sleep 8
        waited=$((waited + 10))
        busy=$(machine_busy)
    done
    echo "  machine used ${busy}% of one core just before the phase (waited ${waited} s)"
}

# measure NAME OUTPUT COMMAND...: one phase: waits for quiet, runs COMMAND (its output shown
# and kept in OUTPUT) with CPU accounting; measures again (LOAD_ATTEMPTS in all) while
# neighbours used more than LOAD_NEIGHBOUR_MAX % of one core during it. Sets NOTE_<NAME>.
measure() {
    local name=$1 out=$2 attempt note=""
    shift 2
    for attempt in $(seq "$ATTEMPTS"); do
        wait_quiet
        phase_begin
        "$@" | tee "$out"
        phase_end "$name"
        [[ $PHASE_NEIGHBOURS -gt $NEIGHBOUR_MAX ]] || break
        if [[ $attempt -lt $ATTEMPTS ]]; then
            note+="attempt $attempt discarded (neighbours ${PHASE_NEIGHBOURS}%); "
            echo "  neighbours used ${PHASE_NEIGHBOURS}% of one core during the phase: measuring again"
        else
            note+="KEPT DESPITE NEIGHBOURS (${PHASE_NEIGHBOURS}% of one core)"
        fi
    done
    printf -v "NOTE_$name" '%s' "${note:-clean}"
}
