#!/usr/bin/env bash
# Coverage-guided fuzzing of labflash-core's parsers and decoders with cargo-fuzz (libFuzzer):
# each target of src-tauri/fuzz runs for SECONDS_PER_TARGET seconds on a working corpus outside
# the clone, seeded from src-tauri/fuzz/seeds/<target>/; the inputs in
# src-tauri/fuzz/regressions/<target>/ (crashes found before) are run first. Prints one line per
# target and exits non-zero if any target crashed, hung or ran out of memory. Not part of CI.
#
# Usage: tests/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
# Environment: LABFLASH_FUZZ_CACHE (default /var/cache/labflash) holds the build (fuzz-target/),
# the working corpora (fuzz-corpus/<target>/) and the logs (fuzz-logs/<target>.log).
set -euo pipefail

seconds=${1:-60}
shift || true
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzz_dir=src-tauri/fuzz
cache=${LABFLASH_FUZZ_CACHE:-/var/cache/labflash}
export CARGO_TARGET_DIR=$cache/fuzz-target
corpora=$cache/fuzz-corpus
logs=$cache/fuzz-logs
mkdir -p "$CARGO_TARGET_DIR" "$corpora" "$logs"

# The tools: nightly (libFuzzer needs -Z flags) and cargo-fuzz.
export PATH=$HOME/.cargo/bin:$PATH
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

fuzz() { cargo +nightly fuzz "$1" --fuzz-dir "$fuzz_dir" "${@:2}"; }

if (($# > 0)); then
    targets=("$@")
else
    mapfile -t targets < <(fuzz list)
fi
for target in "${targets[@]}"; do
    [[ -f $fuzz_dir/fuzz_targets/$target.rs ]] || { echo "no fuzz target $target" >&2; exit 2; }
done
echo "building the fuzz targets (in $CARGO_TARGET_DIR)"
fuzz build --target-dir "$CARGO_TARGET_DIR" 2>&1 | tail -n 3

libfuzzer_args=(-rss_limit_mb=2048 -timeout=10 -print_final_stats=1)
summary=()
failed=0
for target in "${targets[@]}"; do
    log=$logs/$target.log
    findings=()

    # Earlier findings first: each file is run once, no fuzzing.
    regressions=()
    if [[ -d $fuzz_dir/regressions/$target ]]; then
        mapfile -t regressions < <(find "$fuzz_dir/regressions/$target" -type f | sort)
        : >"$logs/$target.regressions.log"
    fi
    if ((${#regressions[@]} > 0)); then
        echo "== $target: ${#regressions[@]} regression input(s)"
        failing=0
        for input in "${regressions[@]}"; do
            if ! fuzz run --target-dir "$CARGO_TARGET_DIR" "$target" "$input" -- \
                "${libfuzzer_args[@]}" >>"$logs/$target.regressions.log" 2>&1; then
                echo "   still fails: $input (log: $logs/$target.regressions.log)"
                failing=$((failing + 1))
            fi
        done
        if ((failing > 0)); then
            findings+=("regressions failing: $failing/${#regressions[@]}")
            failed=1
        fi
    fi

    corpus=$corpora/$target
    mkdir -p "$corpus"
    if [[ -d $fuzz_dir/seeds/$target ]]; then
        cp -f "$fuzz_dir/seeds/$target"/* "$corpus"/
    fi
    echo "== $target: fuzzing for ${seconds}s (log: $log)"
    start=$(date +%s)
    status=0
    fuzz run --target-dir "$CARGO_TARGET_DIR" "$target" "$corpus" -- \
        -max_total_time="$seconds" "${libfuzzer_args[@]}" >"$log" 2>&1 || status=$?
    # libFuzzer's own count when it ran to the end (not the build `fuzz run` may start with).
    took=$(grep -aoE '^Done [0-9]+ runs in [0-9]+ second' "$log" | awk '{print $5}' || true)
    took=${took:-$(($(date +%s) - start))}
    execs=$(grep -a 'stat::number_of_executed_units:' "$log" | tail -n 1 | awk '{print $2}' || true)
    size=$(find "$corpus" -type f | wc -l)
    if ((status != 0)); then
        failed=1
        # libFuzzer's verdict (deadly signal for a panic, timeout, out-of-memory, a sanitizer's
        # report), the panic's place and message if any, and the input it saved.
        kind=$(grep -aoE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer): [a-z -]+' "$log" | tail -n 1 | sed 's/^ERROR: //' || true)
        panic=$(grep -a -m 1 -A 1 ' panicked at ' "$log" | tr '\n' ' ' | sed "s/.* panicked at //; s|$root/||; s/ *\$//" || true)
        artifact=$(grep -aoE 'Test unit written to [^ ]+' "$log" | tail -n 1 | sed 's/Test unit written to //' || true)
        findings=("${kind:-failed (exit $status)}${panic:+ (panic at $panic)}${artifact:+: $artifact}" "${findings[@]}")
        echo "   $target failed; from its log:"
        grep -a -m 1 -A 30 -E ' panicked at |==[0-9]+==ERROR|==[0-9]+== ERROR|^ALARM|out-of-memory' "$log" | cut -c 1-200 | sed 's/^/   | /' || true
    fi
    ((${#findings[@]} > 0)) || findings=(none)
    finding=$(IFS=';'; echo "${findings[*]}")
    summary+=("$(printf '%-16s %8s %12s %8s  %s' "$target" "$took" "${execs:-?}" "$size" "${finding//;/; }")")
done

echo
printf '%-16s %8s %12s %8s  %s\n' target seconds executions corpus finding
printf '%s\n' "${summary[@]}"
exit "$failed"
