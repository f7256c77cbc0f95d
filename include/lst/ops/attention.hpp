// SPDX-License-Identifier: MIT
/// @file attention.hpp
/// @brief Scaled dot-product attention over the heads of projected queries, keys and values (Vaswani et al.
///        2017, 3.2.1-3.2.2), forward and backward, for padded or packed sequences with an optional prefix.
///
/// The projections are the layer's (nn/attention.hpp); this op is what lies between them: for every sequence
/// b and head h, O_h = dropout(softmax(scale Q_h K_h^T + key bias)) V_h, and its backward. How a backend
/// computes it (GEMMs per head, a fused row kernel for narrow heads, which probabilities it keeps) is the
/// backend's; the dropout mask is not (AttentionLayout::dropout_index).
#pragma once

#include <algorithm>
#include <cstdint>

#include "../core/packed_sequences.hpp"
#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

/// How each (sequence, head) pair's attention is computed on the CPU. `gemm`: score and output GEMMs over the
/// whole head, then the softmax row by row. `rowwise` (heads up to 16 wide): one query row at a time against
/// the head's keys and values transposed into a contiguous (D, Tk) buffer, over L1-resident data: two fused
/// passes forward, one backward (backends/cpu/attention_rows.hpp). For narrow heads (the LST side network's:
/// D = 64 / r) a GEMM spends more time packing its operands than multiplying them; `automatic` takes
/// `rowwise` up to D = 16 and `gemm` above. Both give the same function, to rounding.
enum class AttentionKernel { automatic, gemm, rowwise };

/// Where each sequence's rows sit: in x, in q (and the heads and y), and in k and v. A padded (B, T) batch is
/// B sequences of T rows each (of P + T in k and v, prefix first); packed sequences are their own.
struct AttentionLayout {
  PackedSequences x, q, k;
  index_t prefix = 0;                  // P
  index_t q_stride = 0, k_stride = 0;  // the longest sequence's rows in q and k: a (b, h) block's extents

  /// Attention dropout's stream index of probability (b, h, i, j) of H heads (sequence b, head h, query row
  /// i, key j counting the sequence's keys as k lays them out, the P prefix keys first) is
  /// dropout_index(b, h, H, i) + j, with
  ///   dropout_index(b, h, H, i) = ((b' H + h) Sx + i) (P + Sx),  b' = x.first_sequence + b,
  ///   Sx = max(x.padded_length, k_stride - P):
  /// the sequence's place and the positions of the padded batch it came from (core/packed_sequences.hpp).
  /// So a packed layer, a shard of a batch and a layer asked for its first query rows only each drop exactly
  /// the probabilities the whole padded layer drops, and no kernel or thread count changes the mask.
  std::uint64_t dropout_index(index_t b, index_t h, index_t heads, index_t i) const {
    const auto Sx = static_cast<std::uint64_t>(std::max(x.padded_length, k_stride - prefix));
    const auto seq = static_cast<std::uint64_t>(x.first_sequence + b);
    return ((seq * std::uint64_t(heads) + std::uint64_t(h)) * Sx + std::uint64_t(i)) *
           (Sx + std::uint64_t(prefix));
  }
};

/// The choices of one attention call.
struct AttentionSettings {
  index_t heads = 1;
  AttentionKernel kernel = AttentionKernel::automatic;
  /// Training keeps every head's probabilities for backward (else backward recomputes them from q and k).
  bool keep_probabilities = false;
  /// Query rows after a sequence's last real token are not computed (their heads and gradients are 0).
  bool skip_padded_queries = false;
  /// Attention dropout (Hugging Face's attention_probs_dropout_prob), in training only (a forward without
  /// `saved` applies none): probability (b, h, i, j) is kept iff uniform_in_stream(dropout_key, index) >=
  /// dropout, index = L.dropout_index(b, h, heads, i) + j (core/random.hpp), and a kept probability is
  /// scaled by 1 / (1 - dropout). Backward redraws the mask from the same key: make it with
  /// stream_key(seed, step), one per training step. The softmax's statistics and the probabilities kept for
  /// backward are the undropped ones. 0: no dropout, the kernels' code without it.
  double dropout = 0;
  std::uint64_t dropout_key = 0;
};

/// What attention's backward reads besides q, k, v and the heads: the (B, H, Tq, Tk) probabilities when
/// kept, or what the backend needs to recompute them.
template <class T, class Backend>
struct AttentionSaved {
  Tensor<T, Backend> probs;      // (B, H, Sq, Sk) softmax output, longest rows; empty when recomputed
  Tensor<T, Backend> row_stats;  // (B, H, Sq, 2) each row's softmax max and 1 / sum (row-wise recompute)
  bool recompute = false;
};

namespace ops {
/// A backend's attention (backends/<name>/attention.hpp):
///   rowwise_max_head_dim                       the widest head the row-wise kernel takes
///   forward(L, settings, q, k, v, mask, heads, saved, training)
///   backward(L, settings, q, k, v, heads, mask, saved, dheads, dq, dk, dv)
template <class Backend>
struct Attention;
}  // namespace ops

/// heads (rows of q, C) = attention of q over k and v (rows as L lays them out, C = heads x D), scale
/// 1 / sqrt(D). `mask` (B, Tx) marks real tokens of a padded batch (null: all real); a padded key gets
/// exactly zero probability, and a query whose every key is hidden attends to nothing (a zero row). In
/// training, `saved` receives what backward reads, and settings.dropout drops probabilities.
template <class T, class Backend>
void attention_forward(const AttentionLayout& L, const AttentionSettings& settings, ConstView<T, Backend> q,
                       ConstView<T, Backend> k, ConstView<T, Backend> v, const std::int32_t* mask,
                       TensorView<T, Backend> heads, AttentionSaved<T, Backend>* saved) {
  ops::Attention<Backend>::forward(L, settings, q, k, v, mask, heads, saved);
}
/// dq, dk, dv (laid out as q and k) from dheads, given the forward's inputs, output and saved state (and
/// the forward's settings: the same dropout and key).
template <class T, class Backend>
void attention_backward(const AttentionLayout& L, const AttentionSettings& settings, ConstView<T, Backend> q,
                        ConstView<T, Backend> k, ConstView<T, Backend> v, ConstView<T, Backend> heads,
                        const std::int32_t* mask, const AttentionSaved<T, Backend>& saved,
                        ConstView<T, Backend> dheads, TensorView<T, Backend> dq, TensorView<T, Backend> dk,
                        TensorView<T, Backend> dv) {
  ops::Attention<Backend>::backward(L, settings, q, k, v, heads, mask, saved, dheads, dq, dk, dv);
}
/// Whether a backend computes heads of width D with its row-wise kernel under `kernel`.
template <class Backend>
bool attention_rowwise(AttentionKernel kernel, index_t head_dim) {
  return kernel == AttentionKernel::rowwise ||
         (kernel == AttentionKernel::automatic && head_dim <= ops::Attention<Backend>::rowwise_max_head_dim);
}

LST_NAMESPACE_END

#include "../backends/cpu/attention.hpp"
