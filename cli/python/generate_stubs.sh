#!/usr/bin/env bash
# Generates the Python protobuf and gRPC stubs of every .proto file under
# PROTO_DIR into OUT_DIR (default cli/python/build, not committed), with
# Debian's python3-grpc-tools, and writes OUT_DIR/ist_client_stubs.py, which
# imports the job API's modules for the ist_client package.
#
#   cli/python/generate_stubs.sh [OUT_DIR]
#   PYTHONPATH=cli/python:OUT_DIR python3 ...   (Debian's python3)
#
# Exits non-zero, naming the file, if protoc fails or no .proto file declares
# the job service.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/cli/python/build}"
PYTHON="${PYTHON:-/usr/bin/python3}"

# protoc's include root (the protos import each other by paths relative to
# it) and the directory searched for .proto files, both under the repository.
PROTO_INCLUDE=proto
PROTO_DIR=proto
JOB_SERVICE=JobService

cd "$ROOT/$PROTO_INCLUDE"
mapfile -t protos < <(find -L "$ROOT/$PROTO_DIR" -name '*.proto' | sort)
[ ${#protos[@]} -gt 0 ] || { echo "generate_stubs: no .proto file under $ROOT/$PROTO_DIR" >&2; exit 1; }
# Paths relative to the include root.
rel=()
for p in "${protos[@]}"; do rel+=("$(realpath -s --relative-to=. "$p")"); done

mkdir -p "$OUT"
"$PYTHON" -m grpc_tools.protoc -I. --python_out="$OUT" --grpc_python_out="$OUT" "${rel[@]}"

job_proto=""
for p in "${rel[@]}"; do
  if grep -q -E "^service $JOB_SERVICE *\{" "$p"; then job_proto=$p; fi
done
[ -n "$job_proto" ] || { echo "generate_stubs: no .proto file declares service $JOB_SERVICE" >&2; exit 1; }
module="${job_proto%.proto}"
module="${module//\//.}"
cat >"$OUT/ist_client_stubs.py" <<PY
"""The job API's stubs, generated from $job_proto by cli/python/generate_stubs.sh."""
import ${module}_pb2 as job_pb2
import ${module}_pb2_grpc as job_pb2_grpc
PY
echo "generate_stubs: ${#rel[@]} protos -> $OUT (job API: ${module}_pb2)"
