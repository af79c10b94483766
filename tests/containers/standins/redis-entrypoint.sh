#!/bin/sh
# As the official image's entry point: a redis-server started without a config file listens to
# the other containers (protected mode off), since the container's network is the boundary.
set -e
if [ "$1" = redis-server ] && [ "${2%.conf}" = "${2:-}" ]; then
    set -- "$@" --protected-mode no
fi
exec "$@"
