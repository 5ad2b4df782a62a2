#!/usr/bin/env bash
# The layering of src/ (docs/design.md "Components"): a file includes headers of its own layer or of the layers
# below it (common <- policy <- bpf <- daemon, ctl), never above or across; common and policy use no libbpf.
# A header belongs to the layer whose folder holds its .cpp; header-only ones (fd.hpp, skeleton.hpp) to none.
# Prints each include that breaks the rule and exits 1; ctest runs it as the unit test Layering.
set -euo pipefail
cd "$(dirname "$0")/.."

rank() {
  case "$1" in
    common) echo 0 ;; policy) echo 1 ;; bpf) echo 2 ;; daemon | ctl) echo 3 ;;
    *) echo "check-layers.sh: src/$1/ is not a known layer; add it here and to docs/design.md" >&2; exit 2 ;;
  esac
}
layer_of() { # the layer of sockmapd/$1.hpp, or nothing
  local source
  for source in src/*/"$1".cpp; do [ -e "$source" ] && basename "$(dirname "$source")"; done
  return 0
}

status=0
check() { # check FILE LAYER
  local file=$1 layer=$2 header owner
  for header in $(sed -n 's|^#include "sockmapd/\([a-z_0-9]*\)\.hpp".*|\1|p' "$file"); do
    owner=$(layer_of "$header")
    [ -n "$owner" ] && [ "$owner" != "$layer" ] || continue
    if [ "$(rank "$owner")" -ge "$(rank "$layer")" ]; then
      echo "$file ($layer) includes sockmapd/$header.hpp of src/$owner/: a layer uses only the layers below it" >&2
      status=1
    fi
  done
  if [ "$(rank "$layer")" -lt 2 ] && grep -q '^#include <bpf/' "$file"; then
    echo "$file ($layer) includes libbpf: only src/bpf/ and above may" >&2
    status=1
  fi
}

for dir in src/*/; do
  layer=$(basename "$dir")
  rank "$layer" > /dev/null
  for file in "$dir"*.cpp "$dir"*.hpp; do
    [ -e "$file" ] && check "$file" "$layer"
  done
done
for file in include/sockmapd/*.hpp; do
  layer=$(layer_of "$(basename "$file" .hpp)")
  [ -n "$layer" ] && check "$file" "$layer"
done
exit "$status"
