#!/usr/bin/env bash
# Provisioning bench (issue: provisioning store): `user import` of N rows and `license report`
# over them, on SQLite, through the release binary as an admin runs it.
#   benches/scripts/import_and_report.sh [N]     (default 100000)
set -euo pipefail
N=${1:-100000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cargo build --release -q -p teamsgw --manifest-path "$ROOT/Cargo.toml"
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/teamsgw
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
printf '[database]\nurl = "sqlite://teamsgw.db"\n\n[teams]\nbase_fqdn = "teams.carrier.example"\n' > teamsgw.toml
t() { "$BIN" --config teamsgw.toml "$@" > /dev/null; }
t enterprise add Bench --tenant-id 00000000-0000-0000-0000-000000000001 --acquired-licenses "$N"
t enterprise sku add Bench --sku MCOCAP --units 1
t direct-route add --enterprise Bench --fqdn bench.teams.carrier.example
t pbx add --enterprise Bench --name main --domain pbx.bench.example
t lcm-template add --enterprise Bench --name T --group G
awk -v n="$N" 'BEGIN {
  print "UserPrincipalName,LineUri,EnterpriseVoiceEnabled,OnlineVoiceRoutingPolicy,OnlinePstnGateway,Extension,Password,Groups,Skus";
  for (i = 0; i < n; i++) {
    dr = (i % 3 == 0);
    printf "u%d@bench.example,tel:+1555%07d,%s,%s,%s,%d,pw%d,%s,SPE_E5\n", i, i, dr ? "True" : "False",
      dr ? "P" : "", dr ? "bench.teams.carrier.example" : "", 100000 + i, i, (i % 2) ? "G" : "";
  }
}' > users.csv
s=$(date +%s.%N); t user import --enterprise Bench --pbx main users.csv; e=$(date +%s.%N)
echo "user import of $N rows: $(echo "$e - $s" | bc) s"
for run in 1 2 3; do
  s=$(date +%s.%N); "$BIN" --config teamsgw.toml license report --json > report.json; e=$(date +%s.%N)
  echo "license report over $N users (run $run): $(echo "$e - $s" | bc) s"
done
grep -o '"currently_licensed": [0-9]*' report.json
