// SPDX-License-Identifier: MIT
/// @file hash.hpp
/// @brief FNV-1a, 64 bits: a fingerprint for identities (which backbone a checkpoint belongs to, whether a
///        cache is stale), not for security.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "../config.hpp"

LST_NAMESPACE_BEGIN

inline std::uint64_t fnv1a64(std::string_view bytes, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

inline std::string hex64(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

LST_NAMESPACE_END
