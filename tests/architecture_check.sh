#!/usr/bin/env bash
# Checks that no code outside a model family's own files asks which kind of
# model it has: the coordinator, the worker, the engines and the model-file
# code reach every family through common/family/model_family.h only.
#
# A family's own files: common/family/ (the interface, the three families,
# the factory that maps a job to its family), and the math each family is
# built on, named after it: common/*/cnn_*, common/*/sparse_*, common/*/xc_*,
# common/model/resnet_spec.* (the ResNet's part of the job spec, which
# common/model/job_spec.cc reaches through its table of model kinds).
# Two more places read the model kind by necessity and are listed here:
#   common/model/mlp_model.*   the parameter container, whose two layouts
#                              (layers, or a tensor list) it must size;
#   worker/ist_local_main.cc   maps --model and its flags to a spec.
# Prints each offending line and exits 1; exits 0 when there is none.
set -euo pipefail
cd "$(dirname "$0")/.."

pattern='cnn\.has_value\(\)|cnn->|\.opaque\(\)|sparse\.has_value\(\)|CnnJobOf\(|PackCnnParams\(|UnpackCnnParams\(|model\(\) *[!=]= *"|name\(\) *[!=]= *"(mlp|resnet|sparse_mlp)"'
files=$(find common server worker cli -name '*.cc' -o -name '*.h' | grep -v '_test\.cc$' |
  grep -v -E '^common/family/|^common/[a-z]+/(cnn|sparse|xc)_|^common/model/resnet_spec\.|^common/model/mlp_model\.|^worker/ist_local_main\.cc$' | sort)
[ -n "$files" ] || { echo "architecture_check: no source files found" >&2; exit 1; }
if hits=$(grep -n -E "$pattern" $files); then
  echo "architecture_check: code outside the model families branches on the model kind:" >&2
  echo "$hits" >&2
  exit 1
fi
echo "architecture_check: $(wc -w <<<"$files") files, none branches on the model kind"
