#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS seconds each (default 5) and prints one
# line per target: ok or CRASH, executions, executions per second, coverage and, after a
# crash, the input libFuzzer saved. Exits 1 when a target crashes (a panic, a timeout or
# running out of memory) and 2 on a usage error.
#
# Needs the nightly toolchain (`rustup toolchain install nightly`); cargo-fuzz is installed
# into .tools/cargo-fuzz on first use. The fuzz crate builds into fuzz/target, new corpus
# entries go to fuzz/corpus/TARGET, crash inputs to fuzz/artifacts/TARGET, and each run's
# libFuzzer output to fuzz/target/fuzz-logs/TARGET.log.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-5}"
case "$seconds" in
  '' | *[!0-9]* | 0)
    echo "usage: $0 [SECONDS]: seconds to run each target, a positive integer (default 5)" >&2
    exit 2
    ;;
esac

tools="$PWD/.tools/cargo-fuzz"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  echo "installing cargo-fuzz into $tools"
  cargo install --root "$tools" cargo-fuzz --locked
fi
export PATH="$tools/bin:$PATH"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "the nightly toolchain is missing. Install it with: rustup toolchain install nightly" >&2
  exit 1
fi

echo "building the fuzz targets with $(rustup run nightly rustc --version)"
cargo +nightly fuzz build

logs="fuzz/target/fuzz-logs"
mkdir -p "$logs"
failed=0
for target in $(cargo +nightly fuzz list); do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  inputs=("$corpus")
  if [ -d "fuzz/seeds/$target" ]; then
    inputs+=("fuzz/seeds/$target")
  fi
  # Inputs that once crashed a target are replayed on every run.
  if [ -d "fuzz/regressions/$target" ]; then
    inputs+=("fuzz/regressions/$target")
  fi
  log="$logs/$target.log"

  if cargo +nightly fuzz run "$target" "${inputs[@]}" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    result="ok"
  else
    result="CRASH"
    failed=1
  fi

  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
  line=$(printf '%-20s %-5s execs=%-10s exec/s=%-8s cov=%s' \
    "$target" "$result" "${execs:-?}" "${rate:-?}" "${coverage:-?}")
  if [ "$result" = "CRASH" ]; then
    artifact=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -n 1 | cut -d' ' -f5 || true)
    line="$line input=${artifact:-none (see $log)}"
  fi
  echo "$line"
done

exit "$failed"
