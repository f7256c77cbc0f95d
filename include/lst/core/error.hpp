// SPDX-License-Identifier: MIT
/// @file error.hpp
/// @brief The library's exceptions and the check macro that raises them with a readable message.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

#include "../config.hpp"

LST_NAMESPACE_BEGIN

/// Every error lst raises derives from this, so a caller can catch the library's failures in one place.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A tensor whose shape disagrees with what an operation needs. The message names the operation (the
/// layer's name, for layers) and both shapes.
class ShapeError : public Error {
 public:
  using Error::Error;
};

namespace detail {
template <class E, class... Parts>
[[noreturn]] void raise(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw E(os.str());
}
}  // namespace detail

LST_NAMESPACE_END

/// Throws `lst::Error` built from the streamed parts when `cond` is false. The check is always on: bad input
/// must give an error, never undefined behaviour, in release builds too.
#define LST_CHECK(cond, ...)                                      \
  do {                                                            \
    if (!(cond)) ::lst::detail::raise<::lst::Error>(__VA_ARGS__); \
  } while (0)

/// Like LST_CHECK, raising `lst::ShapeError`.
#define LST_CHECK_SHAPE(cond, ...)                                     \
  do {                                                                 \
    if (!(cond)) ::lst::detail::raise<::lst::ShapeError>(__VA_ARGS__); \
  } while (0)
