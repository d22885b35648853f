#!/usr/bin/env bash
# Registration bench, end to end (issue: registration agent): N users provisioned through the
# CLI register with digest at a local Kamailio (tests/kamailio/registrar.cfg, UDP) through the
# release daemon at pbx.register_rate_per_second = RATE. Reports the wall time until all are
# registered, the REGISTER transactions, and the daemon's CPU per transaction (utime+stime
# from /proc), i.e. transactions per second one core of teamsgw sustains.
#   benches/scripts/register_kamailio.sh [N] [RATE]     (default 20000 2000)
set -euo pipefail
N=${1:-20000}
RATE=${2:-2000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
command -v kamailio >/dev/null || { echo "kamailio missing: apt-get install kamailio"; exit 1; }
cargo build --release -q -p teamsgw --manifest-path "$ROOT/Cargo.toml"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/teamsgw
WORK=$(mktemp -d)
KPORT=$((20000 + RANDOM % 20000)); SPORT=$((KPORT + 1)); APORT=$((KPORT + 2)); TPORT=$((KPORT + 3))
cleanup() { [ -n "${GW:-}" ] && kill "$GW" 2>/dev/null; [ -n "${KAM:-}" ] && kill -- -"$KAM" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
cd "$WORK"
sed -e "s|LISTEN_UDP|udp:127.0.0.1:$KPORT|; s|LISTEN_TCP|tcp:127.0.0.1:$KPORT|; s|CTL_SOCKET|unix:$WORK/ctl.sock|" \
    -e "s|^children=2|children=4|" "$ROOT/tests/kamailio/registrar.cfg" > kamailio.cfg
setsid kamailio -f kamailio.cfg -DD -E -Y "$WORK" -P "$WORK/k.pid" > kamailio.log 2>&1 &
KAM=$!
cat > teamsgw.toml <<CFG
[admin]
listen = "127.0.0.1:$APORT"
token = "bench"
[log]
level = "warn"
[database]
url = "sqlite://teamsgw.db"
[teams]
listen = "127.0.0.1:$TPORT"
base_fqdn = "teams.carrier.example"
proxies = []
[pbx]
listen_udp = "127.0.0.1:$SPORT"
listen_tcp = "127.0.0.1:$SPORT"
advertised_address = "127.0.0.1"
register_rate_per_second = $RATE
[license]
refresh_seconds = 3600
[media]
port_min = 42000
port_max = 42100
CFG
t() { "$BIN" --config teamsgw.toml "$@" > /dev/null; }
t enterprise add Bench --tenant-id 00000000-0000-0000-0000-000000000001 --acquired-licenses "$N"
t enterprise sku add Bench --sku SPE_E5 --units $((N + 1))
t direct-route add --enterprise Bench --fqdn bench.teams.carrier.example
t pbx add --enterprise Bench --name main --domain pbx.bench.example --proxy "127.0.0.1:$KPORT" --expires 3600
awk -v n="$N" 'BEGIN { print "UserPrincipalName,LineUri,Extension,Password,Skus";
  for (i = 0; i < n; i++) printf "u%d@bench.example,tel:+1555%07d,%d,pw-%d,SPE_E5\n", i, i, 100000 + i, 100000 + i }' > users.csv
t user import --enterprise Bench --pbx main users.csv
metric() { curl -s "127.0.0.1:$APORT/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }
"$BIN" --config teamsgw.toml run > teamsgw.log 2>&1 &
GW=$!
until curl -sf "127.0.0.1:$APORT/readyz" > /dev/null; do sleep 0.1; done
cpu0=$(awk '{ print $14 + $15 }' /proc/$GW/stat); s=$(date +%s.%N)
until [ "$(metric 'teamsgw_registrations{enterprise="Bench",state="registered"}')" -ge "$N" ]; do sleep 0.2; done
e=$(date +%s.%N); cpu1=$(awk '{ print $14 + $15 }' /proc/$GW/stat)
tx=$(metric 'teamsgw_register_requests_total{')
secs=$(echo "$e - $s" | bc); cpu=$(echo "($cpu1 - $cpu0) / 100" | bc -l)
echo "registered $N users at rate $RATE/s in $secs s: $tx REGISTER transactions, $(echo "$tx / $secs" | bc) tx/s"
echo "teamsgw CPU: $cpu s = $(echo "$cpu * 1000000 / $tx" | bc) us per transaction = $(echo "$tx / $cpu" | bc) tx/s per core"
