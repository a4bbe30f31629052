#!/usr/bin/env bash
# The compose cluster on this machine, for real: Postgres, MLflow, a Ray head and N Ray workers.
#
#   bash scripts/cluster.sh up [N]     build what is missing, start everything with N workers (default 2),
#                                      wait until every service is healthy and N workers joined Ray
#   bash scripts/cluster.sh down       stop the containers (volumes kept) and the private dockerd, if started
#   (smoke and scale use a compose project of their own, mixopt-smoke, from empty volumes, deleted after)
#   bash scripts/cluster.sh smoke      up 2, the live smoke test (tests/service/test_cluster.py: a search
#                                      through the Ray Jobs API, a worker killed, MLflow restarted, a job
#                                      cancelled and resumed), then down
#   bash scripts/cluster.sh scale      up, the same search with 1 and then 2 workers (experiments/cluster_scale.py), down
#   bash scripts/cluster.sh status     docker compose ps and the addresses
#
# Settings (environment):
#   BASE_IMAGE      base of the images: any Debian bookworm image, e.g. python:3.11-slim-bookworm when an
#                   image registry is reachable. Default (and written to a new .env): mixopt-base:bookworm,
#                   which this script builds with debootstrap when it is missing (no registry needed).
#   DOCKER_HOST     a running Docker daemon to use. When none answers, the script starts its own dockerd
#                   (needs root) on a private socket and data root in MIXOPT_DOCKERD_DIR
#                   (default /tmp/mixopt-dockerd; its images stay there for the next run), stopped by pid in `down`.
#   MIXOPT_HOST_NETWORK  1 (default): docker/compose.host.yml, containers on the host's network, every
#                   service on 127.0.0.1 at the MIXOPT_*_PORT ports of .env. 0: docker-compose.yml (bridge
#                   network, published ports 127.0.0.1:8265 and :5000, postgres:17 from a registry).
#   MIXOPT_VENV     the client's virtual environment (mixopt submit, pytest; default .venv, created with
#                   scripts/install.sh dev when missing).
# Secrets: a missing .env is generated from .env.example with `openssl rand -hex` values (never commit it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

die() { echo "cluster.sh: error: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*" >&2; }

DOCKERD_DIR=${MIXOPT_DOCKERD_DIR:-/tmp/mixopt-dockerd}
HOST_NETWORK=${MIXOPT_HOST_NETWORK:-1}
LOCAL_BASE=mixopt-base:bookworm

# --- the Docker daemon ---------------------------------------------------------------------------------
daemon_ok() { timeout 10 docker info >/dev/null 2>&1; }

ensure_daemon() {
    command -v docker >/dev/null || die "no docker CLI on PATH (install docker.io)"
    if daemon_ok; then return; fi
    local sock="unix://$DOCKERD_DIR/docker.sock"
    export DOCKER_HOST=$sock
    if daemon_ok; then say "using the private dockerd at $sock"; return; fi
    command -v dockerd >/dev/null || die "no Docker daemon answers and no dockerd to start (apt-get install docker.io)"
    [ "$(id -u)" = 0 ] || die "no Docker daemon answers; starting a private dockerd needs root (or set DOCKER_HOST)"
    mkdir -p "$DOCKERD_DIR"
    say "no Docker daemon answers: starting a private dockerd (socket $sock, data root $DOCKERD_DIR/root)"
    # no bridge and no iptables rules: containers use host networking (docker/compose.host.yml)
    setsid dockerd --host "$sock" --data-root "$DOCKERD_DIR/root" --exec-root "$DOCKERD_DIR/exec" \
        --pidfile "$DOCKERD_DIR/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
        >"$DOCKERD_DIR/dockerd.log" 2>&1 </dev/null &
    echo $! >"$DOCKERD_DIR/started-by-cluster-sh"
    for _ in $(seq 60); do daemon_ok && return; sleep 1; done
    die "the private dockerd did not answer within 60 s (log: $DOCKERD_DIR/dockerd.log)"
}

stop_private_daemon() {
    local marker="$DOCKERD_DIR/started-by-cluster-sh" pid
    [ -f "$marker" ] || return 0
    pid=$(cat "$marker")
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping the private dockerd (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) still runs 60 s after SIGTERM"
    fi
    rm -f "$marker"
}

# --- compose -------------------------------------------------------------------------------------------
compose_cmd() {
    if docker compose version >/dev/null 2>&1; then echo "docker compose"
    elif command -v docker-compose >/dev/null; then echo "docker-compose"
    else die "neither the compose plugin (docker compose) nor docker-compose is installed"; fi
}

compose_file() { if [ "$HOST_NETWORK" = 1 ]; then echo docker/compose.host.yml; else echo docker-compose.yml; fi; }

# the compose project: MIXOPT_COMPOSE_PROJECT (smoke and scale use their own), else .env's, else mixopt
project() { local p=${MIXOPT_COMPOSE_PROJECT:-$(env_value COMPOSE_PROJECT_NAME)}; echo "${p:-mixopt}"; }

compose() {
    $(compose_cmd) -p "$(project)" --env-file "$ROOT/.env" -f "$ROOT/$(compose_file)" "$@"
}

env_value() { [ -f .env ] || return 0; sed -n "s/^$1=//p" .env | tail -n 1; }

ensure_env() {
    if [ ! -f .env ]; then
        command -v openssl >/dev/null || die "openssl is needed to generate .env secrets"
        # a new Postgres password cannot open a database initialised with another one
        local pg
        pg="$(project)_postgres-data"
        if docker volume inspect "$pg" >/dev/null 2>&1; then
            die "no .env, but the volume $pg holds a database made with an earlier .env's password: restore that .env, or delete the volumes (docker volume rm $pg $(project)_mlflow-artifacts $(project)_mixopt-data)"
        fi
        say "generating .env (new secrets from openssl rand -hex; git-ignored)"
        sed -e "s/^RAY_AUTH_TOKEN=.*/RAY_AUTH_TOKEN=$(openssl rand -hex 32)/" \
            -e "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(openssl rand -hex 16)/" \
            -e "s/^RAY_HEAD_CPUS=.*/RAY_HEAD_CPUS=0/" \
            -e "s/^RAY_WORKER_CPUS=.*/RAY_WORKER_CPUS=1/" \
            -e "s/^RAY_OBJECT_STORE_BYTES=.*/RAY_OBJECT_STORE_BYTES=300000000/" \
            -e "s/^BASE_IMAGE=.*/BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}/" \
            .env.example >.env
        chmod 600 .env
    fi
    grep -q '^RAY_AUTH_TOKEN=change-me' .env && die ".env still has the placeholder RAY_AUTH_TOKEN"
    grep -q '^POSTGRES_PASSWORD=change-me' .env && die ".env still has the placeholder POSTGRES_PASSWORD"
    export BASE_IMAGE=${BASE_IMAGE:-$(env_value BASE_IMAGE)}
    export BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}
}

# --- images --------------------------------------------------------------------------------------------
ensure_base_image() {
    [ "$BASE_IMAGE" = "$LOCAL_BASE" ] || return 0   # a registry image: docker build pulls it
    docker image inspect "$LOCAL_BASE" >/dev/null 2>&1 && return 0
    command -v debootstrap >/dev/null || die "no $LOCAL_BASE image and no debootstrap to build it (apt-get install debootstrap, or set BASE_IMAGE=python:3.11-slim-bookworm)"
    [ "$(id -u)" = 0 ] || die "building $LOCAL_BASE with debootstrap needs root (or set BASE_IMAGE)"
    local dir
    dir=$(mktemp -d /tmp/mixopt-rootfs.XXXXXX)
    say "building the base image $LOCAL_BASE with debootstrap (minbase bookworm, ~2 min)"
    debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$dir.log" 2>&1 \
        || die "debootstrap failed (log: $dir.log)"
    tar -C "$dir" -c . | docker import -c 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
    rm -rf "$dir" "$dir.log"
}

stage_build_inputs() {
    # the CPU torch wheel and extra CA certificates, when this machine has them (git-ignored copies)
    local whl
    for whl in /opt/wheels/torch-2.13.0+cpu-*.whl; do
        [ -f "$whl" ] || continue
        [ -f "docker/wheels/$(basename "$whl")" ] || ln "$whl" docker/wheels/ 2>/dev/null || cp "$whl" docker/wheels/
    done
    local crt
    for crt in /usr/local/share/ca-certificates/*.crt; do
        [ -f "$crt" ] && cp "$crt" docker/certs/
    done
    return 0
}

build_images() {
    ensure_base_image
    stage_build_inputs
    say "building the images (BASE_IMAGE=$BASE_IMAGE; cached layers are reused)"
    local t0=$SECONDS
    if [ "$HOST_NETWORK" = 1 ]; then
        compose build postgres ray-head >"$DOCKERD_DIR.build.log" 2>&1 \
            || { tail -n 30 "$DOCKERD_DIR.build.log" >&2; die "image build failed (log: $DOCKERD_DIR.build.log)"; }
    else
        compose build ray-head >"$DOCKERD_DIR.build.log" 2>&1 \
            || { tail -n 30 "$DOCKERD_DIR.build.log" >&2; die "image build failed (log: $DOCKERD_DIR.build.log)"; }
    fi
    say "images built in $((SECONDS - t0)) s"
}

# --- up / down -----------------------------------------------------------------------------------------
wait_healthy() {
    local deadline=$((SECONDS + ${1:-300})) ids id state bad
    while :; do
        ids=$(compose ps -q)
        bad=""
        for id in $ids; do
            state=$(docker inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' "$id")
            case "$state" in *" running healthy") ;; *) bad="$bad ${state// /:}" ;; esac
        done
        [ -n "$ids" ] && [ -z "$bad" ] && return 0
        [ $SECONDS -lt "$deadline" ] || die "services not healthy after ${1:-300} s:$bad (see: $(compose_cmd) logs)"
        sleep 3
    done
}

wait_ray_nodes() {
    local want=$1 deadline=$((SECONDS + 180)) got=""
    while [ $SECONDS -lt $deadline ]; do
        got=$(compose exec -T ray-head python -c "
import ray
ray.init(address='auto', log_to_driver=False, logging_level='ERROR')
print(sum(1 for n in ray.nodes() if n['Alive']))" 2>/dev/null | tail -n 1) || true
        [ "$got" = "$want" ] && return 0
        sleep 3
    done
    die "Ray has ${got:-?} alive nodes, expected $want (head + workers) after 180 s"
}

cmd_up() {
    local n=${1:-2}
    [[ "$n" =~ ^[0-9]+$ ]] || die "up takes a worker count, got '$n'"
    ensure_daemon
    ensure_env
    build_images
    local t0=$SECONDS
    compose up -d --scale ray-worker="$n" >&2
    wait_healthy 300
    wait_ray_nodes $((n + 1))
    say "up: postgres, mlflow, ray-head and $n ray-worker(s) healthy in $((SECONDS - t0)) s"
    print_addresses
}

print_addresses() {
    if [ "$HOST_NETWORK" = 1 ]; then
        echo "Ray Jobs API: http://127.0.0.1:$(env_value MIXOPT_RAY_DASHBOARD_PORT)   MLflow: http://127.0.0.1:$(env_value MIXOPT_MLFLOW_PORT) (the same address from inside the cluster)"
    else
        echo "Ray Jobs API: http://127.0.0.1:8265   MLflow: http://127.0.0.1:5000 (http://mlflow:5000 from inside the cluster)"
    fi
    echo "export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock} RAY_AUTH_TOKEN=\$(sed -n 's/^RAY_AUTH_TOKEN=//p' .env)"
}

cmd_down() {  # cmd_down [-v]: -v deletes the project's volumes too (smoke and scale do: test data only)
    if daemon_ok || { export DOCKER_HOST="unix://$DOCKERD_DIR/docker.sock"; daemon_ok; }; then
        if [ -f .env ]; then compose down --remove-orphans "$@" >&2; fi
    fi
    stop_private_daemon
    if [ "${1:-}" = -v ]; then
        say "down (project $(project): containers and volumes removed; images kept)"
    else
        say "down (project $(project): volumes and images kept; add -v to the compose down to delete the volumes)"
    fi
}

fresh_test_project() {
    # smoke and scale run in a compose project of their own, started from empty volumes and deleted after,
    # so they never touch the data of a cluster brought up with `up`
    export MIXOPT_COMPOSE_PROJECT=${MIXOPT_COMPOSE_PROJECT:-mixopt-smoke}
    ensure_daemon
    local v
    for v in postgres-data mlflow-artifacts mixopt-data; do
        if docker volume inspect "$(project)_$v" >/dev/null 2>&1; then
            docker volume rm "$(project)_$v" >/dev/null || die "cannot delete the leftover volume $(project)_$v (in use? bash scripts/cluster.sh down)"
        fi
    done
}

ensure_client_venv() {
    VENV=${MIXOPT_VENV:-.venv}
    if [ ! -x "$VENV/bin/mixopt" ] || ! "$VENV/bin/python" -c "import pytest" 2>/dev/null; then
        say "installing the client venv ($VENV) with scripts/install.sh dev"
        MIXOPT_VENV=$VENV bash scripts/install.sh dev >&2
    fi
}

client_env() {
    export MIXOPT_CLUSTER_UP=1 MIXOPT_CLUSTER_SMOKE=1 MIXOPT_HOST_NETWORK=$HOST_NETWORK
    export MIXOPT_CLUSTER_COMPOSE="$(compose_cmd) -p $(project) --env-file $ROOT/.env -f $ROOT/$(compose_file)"
    RAY_AUTH_TOKEN=$(env_value RAY_AUTH_TOKEN)
    export RAY_AUTH_TOKEN DOCKER_HOST
}

cmd_smoke() {
    ensure_client_venv
    local t0=$SECONDS rc=0
    trap 'cmd_down -v' EXIT
    fresh_test_project
    cmd_up 2
    client_env
    export MIXOPT_CLUSTER_TIMES=${MIXOPT_CLUSTER_TIMES:-$DOCKERD_DIR.smoke-times.json}
    "$VENV/bin/python" -m pytest -q -x -m cluster --timeout 1800 -p no:cacheprovider \
        tests/service/test_cluster.py || rc=$?
    say "smoke: pytest exit $rc; $((SECONDS - t0)) s in all (times: $MIXOPT_CLUSTER_TIMES)"
    [ -f "$MIXOPT_CLUSTER_TIMES" ] && cat "$MIXOPT_CLUSTER_TIMES"
    [ "$rc" = 0 ] || die "smoke test failed (pytest exit $rc)"
    say "smoke passed"
}

cmd_scale() {
    ensure_client_venv
    trap 'cmd_down -v' EXIT
    fresh_test_project
    cmd_up 1
    client_env
    "$VENV/bin/python" experiments/cluster_scale.py "$@"
}

case "${1:-}" in
    up) shift; cmd_up "$@" ;;
    down) cmd_down ;;   # the project of `up`; smoke and scale clean up after themselves
    smoke) cmd_smoke ;;
    scale) shift; cmd_scale "$@" ;;
    status) ensure_daemon; ensure_env; compose ps; print_addresses ;;
    *) die "usage: bash scripts/cluster.sh up [N] | down | smoke | scale | status" ;;
esac
