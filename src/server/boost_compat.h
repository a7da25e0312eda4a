// Included before any Boost.Asio header: Boost 1.74's asio/awaitable.hpp uses std::exchange
// without including <utility> (fixed in later Boost releases).
#pragma once

#include <utility>
