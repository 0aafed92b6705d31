#!/usr/bin/env bash
# Checks with `bazel query` that Bazel dependencies point down the layers only:
#
#   common/base <- common/data, common/model <- common/wire <- common/ist
#     <- common/train <- common/store <- common/family <- server/, worker/
#     <- cli/        (common/daemon sits on base and wire)
#
# and that no target under worker/ depends on server/ or the reverse.
# Prints every edge that breaks a rule and exits 1; exits 0 when none does.
set -euo pipefail
cd "$(dirname "$0")/.."

# allowed[P] = the packages a rule in P may depend on (besides itself,
# //proto and @system).
declare -A allowed=(
  [common/base]=""
  [common/data]="common/base"
  [common/model]="common/base common/data"
  [common/wire]="common/base common/data common/model"
  [common/ist]="common/base common/data common/model common/wire"
  [common/train]="common/base common/data common/model common/wire common/ist"
  [common/store]="common/base common/data common/model common/wire common/ist common/train"
  [common/family]="common/base common/data common/model common/wire common/ist common/train common/store"
  [common/daemon]="common/base common/wire"
  [server]="common/base common/data common/model common/wire common/ist common/train common/store common/family common/daemon"
  [worker]="common/base common/data common/model common/wire common/ist common/train common/store common/family common/daemon"
  [cli]="common/base common/data common/model common/wire common/ist common/train common/store common/family common/daemon"
)

edges=$(bazel query --noshow_progress --output=graph --nograph:factored \
  'kind(rule, deps(//common/...:* + //server:* + //worker:* + //cli:*, 1))' 2>/dev/null |
  sed -n 's/^ *"\(\/\/[^"]*\)" -> "\(\/\/[^"]*\)"$/\1 \2/p')

# The query must see the graph, or the check would pass vacuously.
if ! grep -q '^//server:coordinator //common/' <<<"$edges"; then
  echo "layering_check: bazel query returned no edge from //server:coordinator; cannot check" >&2
  exit 1
fi

bad=0
while read -r from to; do
  fp=${from#//}; fp=${fp%%:*}
  tp=${to#//}; tp=${tp%%:*}
  [ "$fp" = "$tp" ] && continue
  case "$tp" in proto|proto/*|third_party*) continue ;; esac
  [ -n "${allowed[$fp]+x}" ] || continue  # tests/, bench/ may use anything
  ok=0
  for a in ${allowed[$fp]}; do [ "$tp" = "$a" ] && ok=1; done
  if [ $ok -eq 0 ]; then
    echo "layering_check: $from -> $to: $fp may not depend on $tp" >&2
    bad=1
  fi
done <<<"$edges"

# Every package under common/ must be in the table above.
for p in $(bazel query --noshow_progress '//common/...' --output=package 2>/dev/null); do
  if [ -z "${allowed[$p]+x}" ]; then
    echo "layering_check: package //$p has no place in the layers; add it to tests/layering_check.sh" >&2
    bad=1
  fi
done

if [ $bad -eq 0 ]; then echo "layering_check: $(wc -l <<<"$edges") edges, all point down"; fi
exit $bad
