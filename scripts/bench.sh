#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and docs/calls-vs-missed.png: the fleet simulation, AWS
# calls per webhook (against moto), criterion benchmarks, and each Lambda binary's size,
# init time and peak memory. Takes about 15 minutes on 2 cores, most of it release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

step() { printf '\n==> %s\n' "$*"; }

# `--assemble` only rebuilds docs/benchmarks.md from the fragments in docs/bench/.
if [ "${1:-}" != "--assemble" ]; then

step "release builds"
cargo build --release --locked -p commsync-sim -p webhook-whatsapp -p webhook-gmail -p webhook-linkedin \
  -p gap-detector -p recovery-worker

step "fleet simulation"
target/release/commsync-sim simulate

step "AWS calls per webhook"
target/release/commsync-sim ingest-cost

step "functions: size, init, memory (x86_64 release builds)"
if [ -x target/lambda/webhook-whatsapp/bootstrap ]; then
  # The binaries `sam build` deploys, built by cargo-lambda.
  target/release/commsync-sim functions --bin-dir target/lambda
else
  target/release/commsync-sim functions --bin-dir target/release
fi

step "criterion benchmarks"
rm -rf target/criterion
cargo bench --locked -p commsync --features local --bench gaps --bench ingest
target/release/commsync-sim criterion-table
fi

step "docs/benchmarks.md"
{
  cat docs/bench/header.md
  printf '\n## Webhook-first against polling\n\n'
  cat docs/bench/simulation.md
  printf '\n![API calls against events missed](calls-vs-missed.png)\n'
  cat docs/bench/simulation-notes.md
  printf '\n## AWS calls per webhook\n\n'
  cat docs/bench/ingest-cost.md
  cat docs/bench/ingest-cost-notes.md
  printf '\n## CPU: verify, parse, normalize; gap analysis\n\n'
  cat docs/bench/criterion.md
  cat docs/bench/criterion-notes.md
  printf '\n## Functions: size, init time, memory\n\n'
  cat docs/bench/functions.md
  cat docs/bench/functions-notes.md
  printf '\nGenerated %s on %s (%s cores, %s) by `scripts/bench.sh`.\n' "$(date -u +%Y-%m-%d)" "$(uname -m)" "$(nproc)" \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
} > docs/benchmarks.md
echo "wrote docs/benchmarks.md"
