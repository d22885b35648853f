#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the Debian packages the tests need (only those
# missing), checks formatting and lints, builds, runs every test, then starts the daemon with
# the README's quick-start command on a fresh copy of the tree and waits for /readyz.
set -euo pipefail
cd "$(dirname "$0")/.."

# command:package pairs for the real peers and tools the tests use.
NEEDED=(
  curl:curl
  sipp:sip-tester
  kamailio:kamailio
  baresip:baresip-core
  promtool:prometheus
  tshark:tshark
  chromium:chromium
  chromedriver:chromium-driver
  openssl:openssl
  svwar:sipvicious
)

# python-module:package pairs, imported with Debian's /usr/bin/python3.
NEEDED_PYTHON=(
  pylibsrtp:python3-pylibsrtp
  selenium:python3-selenium
)

missing=()
for pair in "${NEEDED[@]}"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
for pair in "${NEEDED_PYTHON[@]}"; do
  /usr/bin/python3 -c "import ${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
# check-tls is tested against Debian's public roots.
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
# The store tests start a throwaway PostgreSQL 15 cluster from Debian's binaries.
[ -x /usr/lib/postgresql/15/bin/initdb ] || missing+=(postgresql-15)
if ((${#missing[@]})); then
  echo "== installing missing test packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The API test runs schemathesis (PyPI only) from a venv outside the clone, reused between runs.
SCHEMATHESIS_VENV=/var/tmp/teamsgw-schemathesis
if [ ! -x "$SCHEMATHESIS_VENV/bin/schemathesis" ]; then
  echo "== installing schemathesis into $SCHEMATHESIS_VENV"
  /usr/bin/python3 -c "import venv, ensurepip" >/dev/null 2>&1 || {
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv
  }
  rm -rf "$SCHEMATHESIS_VENV"
  /usr/bin/python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis>=4,<5"
fi
export SCHEMATHESIS_FOR_TEAMSGW_TESTS="$SCHEMATHESIS_VENV/bin/schemathesis"

# The package test builds the .deb with cargo-deb (scripts/package.sh).
if ! command -v cargo-deb >/dev/null 2>&1; then
  echo "== installing cargo-deb"
  cargo install cargo-deb --locked --version "^3"
fi

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The fuzz targets are their own workspace (cargo-fuzz builds them with sanitizers): check
# that they still compile against today's API, so `fuzz/run.sh` never rots unnoticed.
cargo check --manifest-path fuzz/Cargo.toml --locked --bins

echo "== build"
cargo build --workspace --all-targets --locked

# The benches' own checks, in short debug runs (their figures come from `cargo bench` only).
echo "== bench checks"
cargo test --workspace --locked --bench snapshot --bench relay_load

echo "== tests"
cargo test --workspace --locked

echo "== quick start (README) on a fresh copy"
scripts/quickstart-check.sh

echo "== all tests passed"
