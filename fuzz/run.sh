#!/usr/bin/env bash
# Fuzzes every target (SIP parser, stream framer, SDP offer/answer, the call core, multipart
# bodies) for SECONDS (default 180) each. New inputs go to fuzz/corpus/<target>
# (not committed); fuzz/seeds/<target> holds the committed starting points. Crashes land in
# fuzz/artifacts/<target>: turn each into a regression test before fixing it.
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-180}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in parse_message stream_framer sdp_offer_answer call_flows multipart; do
  mkdir -p "corpus/$target"
  RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=16384
done
