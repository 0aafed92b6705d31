#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with Debian's clang-14 (ASan +
# UBSan) and runs each for a bounded time on a copy of its seed corpus.
#
#   tests/fuzz/run_fuzzers.sh [SECONDS_PER_FUZZER]   (default 30)
#   tests/fuzz/run_fuzzers.sh --make-corpus          regenerate the seeds
#
# Prints "fuzz <name>: OK (<runs> runs in <s> s)" or the failure (crashing
# input and the sanitizer report's tail) per fuzzer, then "N passed, M failed";
# exits non-zero if any fuzzer found a crash, leak, timeout or OOM.
#
# Environment: IST_FUZZ_JOBS (fuzzers run at once, default: CPUs, at most
# 5), IST_FUZZ_BUILD_DIR (default ${TMPDIR:-/tmp}/ist-fuzz-build; objects are
# cached there by content hash), IST_FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; }

MODE=run
SECS=30
case "${1:-}" in
  "") ;;
  --make-corpus) MODE=corpus ;;
  -h | --help) usage; exit 0 ;;
  *[!0-9]*) usage; exit 2 ;;
  *) SECS=$1 ;;
esac
if [ "$SECS" -lt 1 ]; then usage; exit 2; fi

# name:max_len. Each has tests/fuzz/<name>_fuzzer.cc and corpus/<name>/.
TARGETS=(idx:4096 csv:4096 libsvm:4096 slice_decoder:4096 model_file:2048)

# --- Packages: deploy/local/setup.sh is the one place that installs them.
NEEDED=(clang-14 libclang-rt-14-dev llvm-14 protobuf-compiler libprotobuf-dev
        libabsl-dev libeigen3-dev libopenblas-dev zlib1g-dev)
missing() {
  local p
  for p in "${NEEDED[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}
if [ -n "$(missing)" ]; then
  echo "fuzz: missing packages: $(missing | tr '\n' ' ')- running deploy/local/setup.sh"
  ./deploy/local/setup.sh
  if [ -n "$(missing)" ]; then
    echo "fuzz: still missing after setup: $(missing | tr '\n' ' ')" >&2
    exit 1
  fi
fi

CXX=/usr/bin/clang++-14
BUILD=${IST_FUZZ_BUILD_DIR:-${TMPDIR:-/tmp}/ist-fuzz-build}
GEN=$BUILD/gen
OBJ=$BUILD/obj
BIN=$BUILD/bin
LOGS=$BUILD/logs
mkdir -p "$OBJ" "$BIN" "$LOGS"
rm -rf "$GEN" && mkdir -p "$GEN"

# EIGEN_USE_BLAS as in the Bazel build (@system//:eigen), everywhere.
# shellcheck disable=SC2054
CXXFLAGS=(-std=c++17 -g -O1 -fno-omit-frame-pointer
          -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
          -DEIGEN_USE_BLAS -I. "-I$GEN" "-I$GEN/proto" -I/usr/include/eigen3)
LIBS=(-lprotobuf
      -labsl_statusor -labsl_status -labsl_str_format_internal -labsl_strings
      -labsl_strings_internal -labsl_cord -labsl_cord_internal -labsl_cordz_info
      -labsl_cordz_functions -labsl_cordz_handle -labsl_synchronization
      -labsl_hash -labsl_city -labsl_low_level_hash -labsl_raw_hash_set
      -labsl_time -labsl_time_zone -labsl_int128 -labsl_base
      -labsl_spinlock_wait -labsl_throw_delegate -labsl_raw_logging_internal
      -labsl_log_severity
      -lz -lopenblas -lpthread)

# Only the messages are needed (no gRPC stubs); job.proto imports tensor.proto,
# worker_service.proto (for slice_wire.cc's PushSliceChunk) both.
mkdir -p "$GEN/proto"
/usr/bin/protoc -Iproto "--cpp_out=$GEN/proto" proto/ist/v1/tensor.proto proto/ist/v1/job.proto \
  proto/ist/v1/worker_service.proto

# model_file.cc reads a job's model from its spec (job_spec.cc), which
# brings the data set registry and the ResNet job code with it.
LIB_SRCS=(common/data/idx_reader.cc common/data/csv_reader.cc common/data/libsvm_reader.cc
          common/model/mlp_model.cc common/wire/slice_codec.cc common/wire/slice_wire.cc common/wire/model_file.cc
          common/model/job_spec.cc common/model/resnet_spec.cc common/model/job_config.cc common/data/dataset_registry.cc
          common/data/image_dir_reader.cc common/ist/cnn_job.cc common/ist/cnn_subnet.cc
          common/model/cnn_model.cc common/ist/subnet.cc
          "$GEN/proto/ist/v1/tensor.pb.cc" "$GEN/proto/ist/v1/job.pb.cc"
          "$GEN/proto/ist/v1/worker_service.pb.cc")

# Object cache key: compiler, flags, library versions and every project
# header the sources can include; plus each source's own contents.
HEADER_KEY=$(
  {
    "$CXX" --version
    printf '%s\n' "${CXXFLAGS[@]}"
    dpkg-query -W libprotobuf-dev libabsl-dev libeigen3-dev libclang-rt-14-dev 2>/dev/null || true
    cat common/*/*.h tests/fuzz/*.h "$GEN"/proto/ist/v1/*.pb.h
  } | sha256sum | cut -c1-16)

declare -A OBJ_OF
compile_all() {  # sources...; compiles the stale ones in parallel
  local src key o log stale=() failed=0
  for src in "$@"; do
    key=$({ echo "$HEADER_KEY"; cat "$src"; } | sha256sum | cut -c1-16)
    o=$OBJ/$(basename "$src" .cc).$key.o
    OBJ_OF[$src]=$o
    [ -f "$o" ] && continue
    stale+=("$src")
    log=$LOGS/$(basename "$src").log
    ( "$CXX" "${CXXFLAGS[@]}" -c "$src" -o "$o.tmp" >"$log" 2>&1 && mv "$o.tmp" "$o" ) &
    while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n || true; done
  done
  wait || true
  for src in "${stale[@]}"; do
    if [ ! -f "${OBJ_OF[$src]}" ]; then
      echo "fuzz: compiling $src failed:" >&2
      tail -n 40 "$LOGS/$(basename "$src").log" >&2
      failed=1
    fi
  done
  return $failed
}

start=$(date +%s)
MAIN_SRCS=()
for t in "${TARGETS[@]}"; do MAIN_SRCS+=("tests/fuzz/${t%%:*}_fuzzer.cc"); done
if [ "$MODE" = corpus ]; then MAIN_SRCS=(tests/fuzz/make_corpus.cc); fi
compile_all "${LIB_SRCS[@]}" "${MAIN_SRCS[@]}"

# Drop cached objects this build no longer uses.
declare -A USED
for o in "${OBJ_OF[@]}"; do USED[$o]=1; done
if [ "$MODE" = run ]; then
  for o in "$OBJ"/*.o; do [ -n "${USED[$o]:-}" ] || rm -f "$o"; done
fi

LIB_OBJS=()
for src in "${LIB_SRCS[@]}"; do LIB_OBJS+=("${OBJ_OF[$src]}"); done
rm -f "$BIN/libist_fuzz.a"
ar rcs "$BIN/libist_fuzz.a" "${LIB_OBJS[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -x /usr/bin/llvm-symbolizer-14 ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/bin/llvm-symbolizer-14
fi

if [ "$MODE" = corpus ]; then
  # The generator is no fuzzer: link without libFuzzer's main.
  "$CXX" "${CXXFLAGS[@]/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,}" \
    "${OBJ_OF[tests/fuzz/make_corpus.cc]}" "$BIN/libist_fuzz.a" "${LIBS[@]}" \
    -o "$BIN/make_corpus"
  "$BIN/make_corpus" tests/fuzz/corpus
  echo "fuzz: seeds written under tests/fuzz/corpus ($(cat tests/fuzz/corpus/*/* | wc -c) bytes)"
  exit 0
fi

for t in "${TARGETS[@]}"; do
  name=${t%%:*}
  rm -f "$BIN/${name}_fuzzer"
  "$CXX" "${CXXFLAGS[@]}" "${OBJ_OF[tests/fuzz/${name}_fuzzer.cc]}" \
    "$BIN/libist_fuzz.a" "${LIBS[@]}" -o "$BIN/${name}_fuzzer" \
    >"$LOGS/link_$name.log" 2>&1 &
done
wait || true
for t in "${TARGETS[@]}"; do
  name=${t%%:*}
  if [ ! -x "$BIN/${name}_fuzzer" ]; then
    echo "fuzz: linking ${name}_fuzzer failed:" >&2
    tail -n 40 "$LOGS/link_$name.log" >&2
    exit 1
  fi
done
echo "fuzz: built ${#TARGETS[@]} fuzzers in $(($(date +%s) - start)) s ($BUILD); ${SECS} s each"

# Runs one fuzzer on a copy of its corpus; leaves the verdict in $work/result.
run_one() {
  local name=$1 max_len=$2 work=$BUILD/run/$1 rc=0
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp "$ROOT/tests/fuzz/corpus/$name/"* "$work/corpus/"
  # -timeout catches a hanging input; the outer timeout only a stuck fuzzer.
  # shellcheck disable=SC2086
  timeout --kill-after=10 $((SECS * 2 + 120)) \
    "$BIN/${name}_fuzzer" -max_total_time="$SECS" -rss_limit_mb=2048 \
    -timeout=10 -max_len="$max_len" -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" ${IST_FUZZ_ARGS:-} "$work/corpus" \
    >"$work/log" 2>&1 || rc=$?
  echo "$rc" >"$work/result"
}

JOBS=${IST_FUZZ_JOBS:-$(nproc)}
[ "$JOBS" -gt 5 ] && JOBS=5
[ "$JOBS" -lt 1 ] && JOBS=1
for t in "${TARGETS[@]}"; do
  run_one "${t%%:*}" "${t##*:}" &
  while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
done
wait

passed=0
failed=0
for t in "${TARGETS[@]}"; do
  name=${t%%:*}
  work=$BUILD/run/$name
  rc=$(cat "$work/result" 2>/dev/null || echo missing)
  done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$work/log" | tail -n 1 || true)
  if [ "$rc" = 0 ] && [ -n "$done_line" ]; then
    runs=$(echo "$done_line" | awk '{print $2}')
    secs=$(echo "$done_line" | awk '{print $5}')
    echo "fuzz $name: OK ($runs runs in $secs s)"
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    kind=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer): .*|runtime error: .*|SUMMARY: [A-Za-z]+: .*' "$work/log" | cut -c1-160 || true)
    echo "fuzz $name: FAILED (exit $rc${kind:+: $kind})"
    artifact=$(grep -oE 'Test unit written to .*' "$work/log" | tail -n 1 | sed 's/^Test unit written to //' || true)
    if [ -n "$artifact" ]; then
      echo "  crashing input: $artifact"
      echo "  reproduce: $BIN/${name}_fuzzer $artifact"
    fi
    echo "  log: $work/log; its last lines:"
    tail -n 40 "$work/log" | sed 's/^/    /'
  fi
done
echo "fuzz: total $(($(date +%s) - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
