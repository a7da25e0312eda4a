#!/usr/bin/env bash
# Installs loraserve's build and test dependencies from the Debian archive (Debian 12).
# Idempotent and quiet when everything is already there. Needs root (or sudo) to install.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libopenblas-dev
  libgtest-dev libgmock-dev libbenchmark-dev clang-format
  libpcre2-dev libutf8proc-dev libsentencepiece-dev clang libclang-rt-14-dev python3
  libboost-dev prometheus-cpp-dev liblapacke-dev curl
  python3-matplotlib  # tools/bench_plot.py (benchmark plots)
)
# Node.js and npm (the server test runs the official OpenAI Node client); a Node.js that
# already brings its own npm (e.g. NodeSource's, which conflicts with Debian's npm) is kept.
command -v npm >/dev/null || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "loraserve: installing from the Debian archive: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "loraserve: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
