#!/bin/sh
# The Herald image's entry point: `docker run herald <what>`.
#
#   gateway | scheduler | matcher | dispatcher   run that service (it gets SIGTERM and drains)
#   healthcheck [--live] [SERVICE...]           probe the services running in this container
#   migrate | up | publish | parked | apikey | endpoint ...   a `herald` command
#   anything else                               run as given: python, sh, ...
#
# Services are configured by HERALD_* variables only; see docs/container.md.
set -eu

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

case "${1:-}" in
    gateway | scheduler | matcher | dispatcher)
        if [ "$#" -gt 1 ]; then
            echo "herald: $1 takes no arguments; configure it with HERALD_* variables" >&2
            exit 2
        fi
        exec python -m "services.$1"
        ;;
    healthcheck)
        shift
        exec python -m shared.healthcheck "$@"
        ;;
    migrate | up | publish | parked | apikey | endpoint)
        exec herald "$@"
        ;;
    "" | help | -h | --help)
        usage
        [ "${1:-}" = "" ] && exit 2
        exit 0
        ;;
    *)
        exec "$@"
        ;;
esac
