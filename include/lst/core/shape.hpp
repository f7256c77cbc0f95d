// SPDX-License-Identifier: MIT
/// @file shape.hpp
/// @brief Extents of a row-major tensor of rank 0 to 4.
#pragma once

#include <array>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>

#include "../fwd.hpp"
#include "error.hpp"

LST_NAMESPACE_BEGIN

/// Rank is capped at 4: (B, H, T, T) attention maps are the largest tensors a transformer needs, and a
/// fixed-size array keeps shapes on the stack and trivially copyable to a device.
inline constexpr int max_rank = 4;

struct Shape {
  std::array<index_t, max_rank> dims{};  // unused trailing entries are 0
  int rank = 0;

  constexpr Shape() = default;
  Shape(std::initializer_list<index_t> extents) {
    LST_CHECK_SHAPE(extents.size() <= max_rank, "Shape: rank ", extents.size(), " exceeds the maximum of ",
                    max_rank);
    for (index_t e : extents) {
      LST_CHECK_SHAPE(e >= 0, "Shape: negative extent ", e);
      dims[rank++] = e;
    }
    check_size();
  }
  template <class It>
  static Shape from_range(It first, It last) {
    Shape s;
    for (; first != last; ++first) {
      LST_CHECK_SHAPE(s.rank < max_rank, "Shape: rank exceeds the maximum of ", max_rank);
      LST_CHECK_SHAPE(*first >= 0, "Shape: negative extent ", *first);
      s.dims[s.rank++] = static_cast<index_t>(*first);
    }
    s.check_size();
    return s;
  }

  index_t operator[](int axis) const { return dims[axis]; }
  index_t numel() const {
    index_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return n;
  }
  /// Extent of the last axis (1 for a scalar): the "columns" of the (rows, cols) view used by kernels.
  index_t cols() const { return rank == 0 ? 1 : dims[rank - 1]; }
  /// Product of all but the last axis: the "rows" of that view.
  index_t rows() const {
    index_t n = 1;
    for (int i = 0; i + 1 < rank; ++i) n *= dims[i];
    return n;
  }
  /// This shape with the leading axis replaced by `n` (a slice of n rows).
  Shape with_leading(index_t n) const {
    Shape s = *this;
    s.dims[0] = n;
    return s;
  }
  /// This shape without its leading axis (the shape of `t[i]`).
  Shape drop_leading() const {
    Shape s;
    for (int i = 1; i < rank; ++i) s.dims[s.rank++] = dims[i];
    return s;
  }

  /// Rejects shapes whose element count overflows (2^62 elements is far beyond any memory, and keeps every
  /// byte count computed from it below 2^64).
  void check_size() const {
    index_t n = 1;
    for (int i = 0; i < rank; ++i) {
      LST_CHECK_SHAPE(dims[i] == 0 || n <= (index_t(1) << 62) / dims[i], "Shape: ", *this,
                      " has more than 2^62 elements");
      n *= dims[i];
    }
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank != b.rank) return false;
    for (int i = 0; i < a.rank; ++i)
      if (a.dims[i] != b.dims[i]) return false;
    return true;
  }
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
    os << '(';
    for (int i = 0; i < s.rank; ++i) os << (i ? ", " : "") << s.dims[i];
    return os << (s.rank == 1 ? ",)" : ")");
  }
  std::string str() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }
};

LST_NAMESPACE_END
