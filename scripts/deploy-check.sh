#!/usr/bin/env bash
# Checks the deploy path as far as a machine without AWS access can: `sam validate --lint`,
# cfn-lint, and `sam build` of every function with cargo-lambda and zig from PyPI.
# ARCHITECTURE selects the build (default x86_64: the aarch64 standard library may not be
# installable on the build machine). Takes about 10 minutes on 2 cores, most of it the
# release build. `sam deploy` itself needs AWS credentials and is not run.
set -euo pipefail
cd "$(dirname "$0")/.."

architecture="${ARCHITECTURE:-x86_64}"
venv="$PWD/.tools/sam-venv"
export SAM_CLI_TELEMETRY=0 PATH="$venv/bin:$PATH"

if [ ! -x "$venv/bin/sam" ] || [ ! -x "$venv/bin/cargo-lambda" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet aws-sam-cli cfn-lint cargo-lambda ziglang
fi

sam validate --lint --region us-east-1
cfn-lint template.yaml
sam build --parameter-overrides "Architecture=$architecture" --build-dir .aws-sam/build
for function in WebhookWhatsAppFunction WebhookGmailFunction WebhookLinkedInFunction GapDetectorFunction RecoveryWorkerFunction; do
  test -x ".aws-sam/build/$function/bootstrap" || { echo "missing .aws-sam/build/$function/bootstrap" >&2; exit 1; }
  printf '%-26s %s\n' "$function" "$(du -h ".aws-sam/build/$function/bootstrap" | cut -f1)"
done
echo "sam build produced every function for $architecture"
