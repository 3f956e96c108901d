#!/usr/bin/env bash
# Runs every jute fuzz target for a bounded time; exits non-zero if any of them finds a crash.
#
#   jute/fuzz/run.sh [seconds-per-target]        (default 20)
#
# Environment:
#   CARGO_TARGET_DIR   where to build (default: jute/fuzz/target)
#   FUZZ_SANITIZER     address (default, as cargo-fuzz) or none. jute forbids unsafe code, so
#                      ASan mostly serves to make libFuzzer's -malloc_limit_mb exact: any single
#                      allocation above FUZZ_MALLOC_LIMIT_MB (default 64) from inputs of a few KB
#                      means a length was trusted before it was checked.
#   FUZZ_PLAIN=1       skip cargo-fuzz: build with `cargo build` and the RUSTFLAGS cargo-fuzz
#                      uses (stable flags only, no sanitizer) and run the binaries directly. Also
#                      the fallback when cargo-fuzz cannot be installed.
#   FUZZ_TARGETS       space-separated subset of the targets (default: all)
#
# Only stable Rust is needed: RUSTC_BOOTSTRAP=1 lets stable rustc accept the -Z flags that
# cargo-fuzz passes for a sanitizer. Crash reproducers land in jute/fuzz/artifacts/<target>/,
# logs in jute/fuzz/artifacts/<target>.log; reproduce one with
#   cargo fuzz run <target> artifacts/<target>/<file>    (or the binary with the file as argument)
set -uo pipefail

secs=${1:-20}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here" || exit 1
export RUSTC_BOOTSTRAP=1
target_dir=${CARGO_TARGET_DIR:-$here/target}
sanitizer=${FUZZ_SANITIZER:-address}
malloc_limit=${FUZZ_MALLOC_LIMIT_MB:-64}
triple=$(rustc -vV | sed -n 's/^host: //p')
targets=(${FUZZ_TARGETS:-frame request connect multi quorum_packet})
mkdir -p artifacts

plain=${FUZZ_PLAIN:-0}
if [ "$plain" != 1 ] && ! cargo fuzz --version >/dev/null 2>&1; then
    echo "run.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked || {
        echo "run.sh: cargo-fuzz could not be installed; building without it" >&2
        plain=1
    }
fi

./seed-corpus.sh || exit 1

start=$(date +%s)
if [ "$plain" = 1 ]; then
    # What cargo-fuzz passes (0.13, without a sanitizer), all stable flags. --target keeps them
    # off build scripts and proc macros.
    export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
-Cllvm-args=-simplifycfg-branch-fold-threshold=0 --cfg fuzzing -Cdebug-assertions \
-Coverflow-checks -Ccodegen-units=1"
    cargo build --release --target "$triple" --target-dir "$target_dir" --bins || exit 1
else
    cargo fuzz build -s "$sanitizer" --target-dir "$target_dir" || {
        echo "run.sh: cargo fuzz build failed" >&2
        exit 1
    }
fi
echo "run.sh: build took $(($(date +%s) - start)) s"

failed=()
summary=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    log="artifacts/$t.log"
    opts=(-max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048
        -malloc_limit_mb="$malloc_limit" -timeout=10 -artifact_prefix="$here/artifacts/$t/")
    echo "run.sh: fuzzing $t for $secs s"
    if [ "$plain" = 1 ]; then
        "$target_dir/$triple/release/$t" "${opts[@]}" "$here/corpus/$t" > "$log" 2>&1
    else
        cargo fuzz run -s "$sanitizer" --target-dir "$target_dir" "$t" "$here/corpus/$t" -- \
            "${opts[@]}" > "$log" 2>&1
    fi
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE '(cov|ft): [0-9]+' "$log" | tail -2 | tr '\n' ' ')
    units=$(find "corpus/$t" -type f | wc -l)
    if [ "$rc" -ne 0 ]; then
        failed+=("$t")
        summary+=("$(printf '%-14s FAILED (exit %s) execs=%s, see %s' "$t" "$rc" "${execs:-?}" "$log")")
        grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" | head -5 >&2
    else
        summary+=("$(printf '%-14s ok  execs=%-9s %scorpus=%s' "$t" "${execs:-?}" "$cov" "$units")")
    fi
done

echo "run.sh: results ($secs s per target, sanitizer: $([ "$plain" = 1 ] && echo none/plain || echo "$sanitizer"))"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "run.sh: crashes in: ${failed[*]}" >&2
    exit 1
fi
