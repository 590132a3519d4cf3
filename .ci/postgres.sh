# shellcheck shell=bash
# Start a throwaway PostgreSQL server on loopback for the integration tests.
#
# Source it (". .ci/postgres.sh"); it exports BGSERVICE_TEST_POSTGRES_DSN, a
# postgresql:// URL of a superuser that may create databases, since each test
# works in a database of its own. Sourcing it again reuses the running server.
# It needs the server binaries (initdb, pg_ctl, postgres): those found on the
# machine are used, and as root it installs Debian's "postgresql" package when
# there are none. As root the server runs as the "postgres" user, or as
# "nobody", because PostgreSQL refuses to run as root.
#
# Settings: BGSERVICE_PG_PORT (default 55432) and BGSERVICE_PG_DIR (default
# $TMPDIR/bgservice-postgres-PORT). Stop it with "pg_ctl -D DIR/data stop", run
# as the user it runs as.

_bgservice_pg_fail() {
    echo "postgres.sh: $*" >&2
    return 1
}

# Print the newest directory holding initdb, pg_ctl and pg_isready, if any.
_bgservice_pg_find_bin() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) \
        "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/x)")"; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/pg_isready" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

_bgservice_pg_install() {
    [ "$(id -u)" = 0 ] || _bgservice_pg_fail "no PostgreSQL server binaries" \
        "(initdb, pg_ctl, pg_isready) found; install Debian's 'postgresql'" \
        "package, or source this as root to have it installed" || return 1
    command -v apt-get >/dev/null || _bgservice_pg_fail "no PostgreSQL server" \
        "binaries found and no apt-get to install them with" || return 1
    echo "postgres.sh: installing PostgreSQL with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 ||
        _bgservice_pg_fail "apt-get install postgresql failed; see above"
}

# Run a command as the server's user: PostgreSQL refuses to run as root.
_bgservice_pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$_BGSERVICE_PG_OWNER" -- "$@"
    else
        "$@"
    fi
}

_bgservice_pg_choose_owner() {
    if [ "$(id -u)" != 0 ]; then
        _BGSERVICE_PG_OWNER=$(id -un)
    elif id postgres >/dev/null 2>&1; then
        _BGSERVICE_PG_OWNER=postgres
    else
        _BGSERVICE_PG_OWNER=nobody
    fi
}

_bgservice_pg_init() {
    local dir=$1 bin=$2
    [ -f "$dir/data/PG_VERSION" ] && return 0

    mkdir -p "$dir" || _bgservice_pg_fail "cannot create $dir" || return 1
    # A random password, kept beside the cluster so that sourcing again finds it.
    (umask 077 && od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$dir/password")
    chown -R "$_BGSERVICE_PG_OWNER" "$dir" && chmod 700 "$dir" ||
        _bgservice_pg_fail "cannot hand $dir to user $_BGSERVICE_PG_OWNER" ||
        return 1
    _bgservice_pg_as_owner "$bin/initdb" -D "$dir/data" -U bgservice \
        --pwfile="$dir/password" --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
        _bgservice_pg_fail "initdb failed; see $dir/initdb.log" || return 1
}

_bgservice_pg_start() {
    local dir=$1 bin=$2 port=$3 waited=0
    if ! _bgservice_pg_as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        # The socket goes in the cluster's folder: /var/run/postgresql may not
        # exist, or belong to another server.
        _bgservice_pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null ||
            _bgservice_pg_fail "the server did not start on port $port; see" \
                "$dir/server.log (is the port taken?)" || return 1
    fi
    until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; do
        waited=$((waited + 1))
        [ "$waited" -le 60 ] || _bgservice_pg_fail "the server on 127.0.0.1:$port" \
            "was not ready after 30 s; see $dir/server.log" || return 1
        sleep 0.5
    done
}

_bgservice_pg_create_database() {
    local dir=$1 bin=$2 port=$3 name=$4
    local psql="$bin/psql"
    [ -x "$psql" ] || psql=$(command -v psql) ||
        _bgservice_pg_fail "psql not found next to the server binaries" || return 1
    if [ "$(PGPASSWORD=$(cat "$dir/password") "$psql" -h 127.0.0.1 -p "$port" \
        -U bgservice -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]; then
        PGPASSWORD=$(cat "$dir/password") "$psql" -q -h 127.0.0.1 -p "$port" \
            -U bgservice -d postgres -c "CREATE DATABASE $name" ||
            _bgservice_pg_fail "cannot create database $name" || return 1
    fi
}

_bgservice_pg_main() {
    local port=${BGSERVICE_PG_PORT:-55432}
    local dir=${BGSERVICE_PG_DIR:-${TMPDIR:-/tmp}/bgservice-postgres-$port}
    local bin
    bin=$(_bgservice_pg_find_bin) || { _bgservice_pg_install && bin=$(_bgservice_pg_find_bin); } ||
        _bgservice_pg_fail "no PostgreSQL server binaries after installing" || return 1
    _bgservice_pg_choose_owner

    _bgservice_pg_init "$dir" "$bin" &&
        _bgservice_pg_start "$dir" "$bin" "$port" &&
        _bgservice_pg_create_database "$dir" "$bin" "$port" bgservice_test ||
        return 1

    export BGSERVICE_TEST_POSTGRES_DSN="postgresql://bgservice:$(cat "$dir/password")@127.0.0.1:$port/bgservice_test"
    echo "postgres.sh: PostgreSQL $("$bin/postgres" -V | awk '{print $3}') ready on" \
        "127.0.0.1:$port (data in $dir/data); BGSERVICE_TEST_POSTGRES_DSN exported" >&2
}

_bgservice_pg_main
