#!/bin/sh
# Kernel cost of a loopback UDP send by method (see udp_send_cost.c), pinned to CPU 0.
# Needs gcc and liburing-dev (apt-get install liburing-dev).
set -eu
here=$(dirname "$0")
out=${TMPDIR:-/tmp}/teamsgw-udp-send-cost
[ -e /usr/include/liburing.h ] || { echo "udp_send_cost: needs liburing-dev (apt-get install liburing-dev)" >&2; exit 1; }
gcc -O2 -Wall -o "$out" "$here/udp_send_cost.c" -luring
exec taskset -c 0 "$out"
