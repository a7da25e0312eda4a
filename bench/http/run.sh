#!/usr/bin/env bash
# HTTP transport benchmark for loraserve serve: cpp-httplib vs Boost.Beast, many concurrent SSE
# streams. Builds the two servers and the load client with g++ (not part of the CMake build)
# into build/http-bench/, then runs bench.py, which prints the tables and writes
# bench/results/http_transport.json.
#   Needs: g++ (C++20), libcpp-httplib-dev (pulls libssl-dev, zlib1g-dev, libbrotli-dev),
#   libboost-dev (header-only Asio/Beast), pkg-config, python3.
#   Usage: bench/http/run.sh [bench.py options, e.g. --reps 3 --conns 100,1000,2000]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/http-bench
mkdir -p "$out"
[ -f /usr/include/httplib.h ] || { echo "run.sh: apt-get install -y libcpp-httplib-dev"; exit 1; }
[ -f /usr/include/boost/beast.hpp ] || { echo "run.sh: apt-get install -y libboost-dev"; exit 1; }
flags=(-std=c++20 -O2 -Wall -Wextra -pthread)
# shellcheck disable=SC2046
g++ "${flags[@]}" -o "$out/sse_httplib" bench/http/sse_httplib.cpp \
  $(pkg-config --cflags --libs cpp-httplib) &
p1=$!
g++ "${flags[@]}" -o "$out/sse_beast" bench/http/sse_beast.cpp &
p2=$!
g++ "${flags[@]}" -o "$out/sse_load" bench/http/sse_load.cpp
wait "$p1"
wait "$p2"
echo "# built: cpp-httplib $(dpkg-query -W -f '${Version}' libcpp-httplib-dev 2>/dev/null)," \
  "boost $(dpkg-query -W -f '${Version}' libboost-dev 2>/dev/null), $(g++ --version | head -1)"
ulimit -n "$(ulimit -Hn)"
exec python3 bench/http/bench.py --bin-dir "$out" "$@"
