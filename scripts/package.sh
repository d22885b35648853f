#!/usr/bin/env bash
# Builds the Debian package with cargo-deb (installed from crates.io when missing):
# `scripts/package.sh [cargo-deb options]`, e.g. `--profile dev --no-build` for the test
# suite's package of the debug build; by default a release build. The package's
# /etc/teamsgw/teamsgw.toml is config/teamsgw.toml with the paths of a packaged install
# (state in /var/lib/teamsgw, the password key in /etc/teamsgw), so the two never drift.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "== installing cargo-deb"
  cargo install cargo-deb --locked --version "^3"
fi

mkdir -p deploy/debian/build
sed -e 's|^state_dir = "var"$|state_dir = "/var/lib/teamsgw"|' \
    -e 's|^url = "sqlite://var/teamsgw.db"$|url = "sqlite:///var/lib/teamsgw/teamsgw.db"|' \
    -e 's|^password_key = "file:var/password.key"$|password_key = "file:/etc/teamsgw/password.key"|' \
    config/teamsgw.toml > deploy/debian/build/teamsgw.toml
for key in 'state_dir = "/var/lib/teamsgw"' 'url = "sqlite:///var/lib/teamsgw/teamsgw.db"' \
           'password_key = "file:/etc/teamsgw/password.key"'; do
  grep -qxF "$key" deploy/debian/build/teamsgw.toml || {
    echo "config/teamsgw.toml changed: the packaged config lacks: $key" >&2
    exit 1
  }
done

exec cargo deb -p teamsgw "$@"
