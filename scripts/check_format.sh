#!/usr/bin/env bash
# Fails when any C++/CUDA source differs from .clang-format's style.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files 'src/*.h' 'src/*.cpp' 'src/*.cu' 'src/*.cuh' 'apps/*.h' 'apps/*.cpp' \
  'tests/*.h' 'tests/*.cpp' 'bench/*.cpp' 'bench/*.h' 2>/dev/null || true)
[ -n "$files" ] || { echo "check_format: no files"; exit 1; }
# shellcheck disable=SC2086
clang-format --dry-run --Werror $files
echo "check_format: $(echo "$files" | wc -l) files formatted"
