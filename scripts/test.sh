#!/usr/bin/env bash
# Set up everything the tests need, then run lint, types and the whole test suite.
#   bash scripts/test.sh            # all tests
#   bash scripts/test.sh -m unit    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    if [ "$(id -u)" = 0 ]; then
        [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        echo "missing: $* -- install with: sudo apt-get install $*" >&2
        exit 1
    fi
}

command -v uv >/dev/null || python3 -m pip install -q uv
command -v redis-server >/dev/null || apt_install redis-server
command -v redis-sentinel >/dev/null || apt_install redis-sentinel   # the failover test
command -v prometheus >/dev/null || apt_install prometheus   # the Prometheus integration test
command -v chromium >/dev/null || apt_install chromium       # the browser (e2e) tests
command -v openssl >/dev/null || apt_install openssl         # the Redis TLS test's throwaway CA
command -v cc >/dev/null || apt_install gcc                  # tests/clock: a worker node with a skewed wall clock
command -v ip >/dev/null || apt_install iproute2               # the multi-host tests' network namespaces
# The container tier (tests/containers): Podman with runc, and debootstrap for the base images'
# stand-ins. Podman's settings come from tests/containers/containers.conf, not /etc.
command -v podman >/dev/null || apt_install podman runc
command -v debootstrap >/dev/null || apt_install debootstrap

uv sync --frozen --quiet
# KEDA's CRD schema, for the check of deploy/k8s/keda.yaml (the npm registry's maintained copy).
if command -v npm >/dev/null; then
    npm ci --prefix tests/k8s --silent --no-audit --no-fund
fi

if [ -d ../shared/models ]; then
    uv run --frozen python scripts/download_model.py --from ../shared/models
else
    uv run --frozen python scripts/download_model.py
fi

uv run --frozen ruff check .
uv run --frozen ruff format --check .
uv run --frozen mypy
uv run --frozen pytest "$@"
