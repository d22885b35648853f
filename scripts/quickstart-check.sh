#!/usr/bin/env bash
# Runs the README's quick-start run command, exactly, in a fresh copy of the tracked tree (so
# var/ is empty) and waits for /readyz to answer 200: dev certificate generated, SQLite created.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

run_cmd=$(grep -m1 -E '^cargo run --release -p teamsgw -- run' README.md || true)
[ -n "$run_cmd" ] || { echo "README.md has no quick-start run command"; exit 1; }
admin=$(sed -n 's/^listen = "\(127\.0\.0\.1:[0-9]*\)"$/\1/p' config/teamsgw.toml | head -1)
if curl -s -o /dev/null "http://$admin/healthz"; then
  echo "something already listens on $admin; stop it first"; exit 1
fi

copy=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$copy"; }
trap cleanup EXIT
git ls-files -z | xargs -0 cp --parents -t "$copy"
[ ! -e "$copy/var" ] || { echo "a fresh copy must not contain var/"; exit 1; }

cd "$copy"
# The copy's crates sit at another path, so cargo rebuilds them: do that before the timed wait
# (on a slow machine the release rebuild alone can take longer than it).
cargo build --release -p teamsgw --locked
echo "+ $run_cmd"
bash -c "exec $run_cmd" >"$copy/quickstart.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$admin/readyz")" = 200 ]; then
    [ -f var/dev-cert.pem ] && [ -f var/teamsgw.db ] || { echo "var/ not populated"; ls -la var; exit 1; }
    kill -TERM "$pid"; wait "$pid"; pid=""
    echo "quick start: /readyz 200, var/ has dev-cert.pem and teamsgw.db, SIGTERM exit 0"
    exit 0
  fi
  kill -0 "$pid" 2>/dev/null || { echo "daemon exited:"; cat "$copy/quickstart.log"; exit 1; }
  sleep 0.2
done
echo "quick start: /readyz never answered 200"; cat "$copy/quickstart.log"; exit 1
