// SPDX-License-Identifier: MIT
/// @file packed_sequences.hpp
/// @brief Sequences of different lengths packed row after row, with no padding ("unpadded" or "varlen"
///        batches, as NVIDIA's BERT and FlashAttention's varlen kernels lay them out).
///
/// A (B, T) batch padded on the right computes B * T rows; a dynamic-padding batch of GLUE sentence pairs is
/// about a third padding. A layer that works row by row (Linear, LayerNorm, the FFN, dropout) does not care
/// where one sequence ends; only attention does, and it reads the boundaries from here. The LST side network
/// runs packed: every row it computes is a real token.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../fwd.hpp"
#include "error.hpp"

LST_NAMESPACE_BEGIN

/// Sequence b is rows [start[b], start[b + 1]) of an (N, C) tensor. The sequences came from a batch padded
/// to `padded_length` positions: row t of sequence b was position (first_sequence + b) * padded_length + t
/// there, which is where dropout takes its mask from, so that a packed layer drops exactly what the padded
/// one would. `first_sequence` is nonzero for a shard of a batch (sequences first_sequence, ... of it): its
/// rows keep the masks they have in the whole batch.
struct PackedSequences {
  index_t padded_length = 0;
  index_t first_sequence = 0;
  std::vector<index_t> start = {0};  // B + 1 row offsets

  index_t count() const { return index_t(start.size()) - 1; }
  index_t rows() const { return start.back(); }
  index_t length(index_t b) const { return start[std::size_t(b + 1)] - start[std::size_t(b)]; }
  index_t first_row(index_t b) const { return start[std::size_t(b)]; }
  index_t longest() const {
    index_t n = 0;
    for (index_t b = 0; b < count(); ++b) n = std::max(n, length(b));
    return n;
  }
  /// Row r's position in the padded batch ((first_sequence + b) * padded_length + t), for row r = start[b] +
  /// t.
  index_t origin(index_t b, index_t t) const { return (first_sequence + b) * padded_length + t; }

  /// The real tokens of a (B, T) batch padded on the right: `mask` (B, T) has 1 for a real token and 0 for
  /// padding (null: all real). Each sequence must start with a real token and have no real token after its
  /// padding (Hugging Face's right padding), because only those are packed. With `first_sequence`, the B
  /// sequences are sequences first_sequence, ... of a larger batch (`mask` points at the first one's row).
  static PackedSequences from_mask(const std::int32_t* mask, index_t B, index_t T,
                                   index_t first_sequence = 0) {
    PackedSequences p;
    p.padded_length = T;
    p.first_sequence = first_sequence;
    p.start.assign(std::size_t(B + 1), 0);
    for (index_t b = 0; b < B; ++b) {
      const std::int32_t* m = mask ? mask + b * T : nullptr;
      index_t real = T;
      if (m) {
        real = 0;
        while (real < T && m[real] != 0) ++real;
        for (index_t t = real; t < T; ++t)
          LST_CHECK(m[t] == 0, "packed sequences: mask row ", first_sequence + b,
                    " has a real token at position ", t, " after padding at position ", real,
                    "; only right padding is packed");
        LST_CHECK(real > 0, "packed sequences: mask row ", first_sequence + b,
                  " has no real token (position 0 is padding)");
      }
      p.start[std::size_t(b + 1)] = p.start[std::size_t(b)] + real;
    }
    return p;
  }
  /// B sequences of T rows each, every one real: the layout of an unpadded (B, T) batch.
  static PackedSequences whole(index_t B, index_t T) { return from_mask(nullptr, B, T); }

  /// The first n rows of each sequence (each must have n), packed: sequence b is rows [b n, (b + 1) n),
  /// still at the positions they had in the padded batch.
  PackedSequences first_rows(index_t n) const {
    PackedSequences p;
    p.padded_length = padded_length;
    p.first_sequence = first_sequence;
    p.start.resize(start.size());
    for (index_t b = 0; b <= count(); ++b) {
      if (b < count())
        LST_CHECK(length(b) >= n, "packed sequences: sequence ", b, " has ", length(b),
                  " rows, fewer than the ", n, " asked");
      p.start[std::size_t(b)] = b * n;
    }
    return p;
  }

  bool operator==(const PackedSequences& o) const {
    return padded_length == o.padded_length && first_sequence == o.first_sequence && start == o.start;
  }
};

LST_NAMESPACE_END
