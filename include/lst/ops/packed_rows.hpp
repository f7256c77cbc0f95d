// SPDX-License-Identifier: MIT
/// @file packed_rows.hpp
/// @brief Packed-row copies between two layouts of the same sequences (core/packed_sequences.hpp): each
///        sequence's first rows copied or added from one layout to the other.
#pragma once

#include "../core/packed_sequences.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
/// A backend's packed-row copies (backends/<name>/packed_rows.hpp), over rows of C elements of memory of
/// that backend; for each sequence b of `to`, the first min(from.length(b), to.length(b)) rows:
///   copy(from, to, C, src, dst)    dst (laid out as `to`) = those rows of src (laid out as `from`)
///   add(from, to, C, src, dst)     dst += those rows of src
template <class Backend>
struct PackedRowsKernel;
}  // namespace ops

/// Each sequence's first rows, as many as the shorter of its two layouts has: dst (laid out as `to`) =
/// those rows of src (laid out as `from`). What a layer computing only the first rows reads of its input.
/// src and dst are Backend's memory (the host's by default).
template <class Backend = Cpu, class T>
void copy_first_rows(const PackedSequences& from, const PackedSequences& to, index_t C, const T* src,
                     T* dst) {
  ops::PackedRowsKernel<Backend>::copy(from, to, C, src, dst);
}

/// As copy_first_rows, adding into dst: a residual path from or to the first rows.
template <class Backend = Cpu, class T>
void add_first_rows(const PackedSequences& from, const PackedSequences& to, index_t C, const T* src, T* dst) {
  ops::PackedRowsKernel<Backend>::add(from, to, C, src, dst);
}

LST_NAMESPACE_END

#include "../backends/cpu/packed_rows.hpp"
