// SPDX-License-Identifier: MIT
/// @file row_table.hpp
/// @brief RowTable: the rows of a matrix that lie anywhere in memory (a batch read in place from the tap
///        cache), one pointer a row.
#pragma once

#include "../fwd.hpp"

LST_NAMESPACE_BEGIN

/// `rows` rows of `cols` values each, row i at row[i]: what a product reads in place instead of gathering the
/// rows into one block first.
template <class T>
struct RowTable {
  const T* const* row = nullptr;
  index_t rows = 0, cols = 0;
};

LST_NAMESPACE_END
