#!/usr/bin/env bash
# Runs every check of the project: formatting, clippy, unit and integration tests against
# a local moto server, the chaos test, a short fuzzing run of every parser and verifier,
# and validation of template.yaml with sam and cfn-lint.
# Installs what it needs into .tools/ (moto; aws-sam-cli with cfn-lint in a separate venv,
# because installing them beside moto downgrades boto3 and click).
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/.tools"
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_EC2_METADATA_DISABLED=true SAM_CLI_TELEMETRY=0

step() { printf '\n==> %s\n' "$*"; }

step "python tools in $tools"
if [ ! -x "$tools/moto-venv/bin/moto_server" ]; then
  python3 -m venv "$tools/moto-venv"
  "$tools/moto-venv/bin/pip" install --quiet 'moto[server]'
fi
if [ ! -x "$tools/sam-venv/bin/sam" ] || [ ! -x "$tools/sam-venv/bin/cfn-lint" ]; then
  python3 -m venv "$tools/sam-venv"
  "$tools/sam-venv/bin/pip" install --quiet aws-sam-cli cfn-lint
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "moto server on 127.0.0.1"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$tools/moto-venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$tools/moto-test.log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
echo "moto on $AWS_ENDPOINT_URL"

step "cargo test (unit and integration)"
cargo test --workspace --locked -- --skip chaos_webhooks_lose_nothing

step "chaos: 10,000 webhook deliveries while 20% of AWS calls fail"
CHAOS_DELIVERIES="${CHAOS_DELIVERIES:-10000}" \
  cargo test -p commsync-tests --locked --test integration chaos_webhooks_lose_nothing -- --nocapture

step "fuzz every parser and verifier briefly"
./scripts/fuzz.sh "${FUZZ_SECONDS:-3}"

step "sam validate --lint"
"$tools/sam-venv/bin/sam" validate --lint --region us-east-1 --template template.yaml

step "cfn-lint"
"$tools/sam-venv/bin/cfn-lint" template.yaml

echo
echo "all checks passed"
