// SPDX-License-Identifier: MIT
/// @file structural_pruning.hpp
/// @brief LST's structural initialisation (Sung et al. 2022, section 2.3; reference code seq2seq/pruning/):
///        each side block starts as backbone block i with its rows and columns pruned to the side widths,
///        chosen by importance (weight magnitude, or empirical Fisher information = sum of squared task-loss
///        gradients). Two selections are offered:
///  - `reference`: per matrix, keep the d_out/r rows with the largest row L1 importance, the inputs following
///    the previous matrix's selection; q, k, v share one row set scored by the product of their importances;
///    LayerNorms sliced alike. Faithful, flaws included: the residual stream is not kept consistent (each
///    output projection picks its own units) and kept inner dimensions are re-read as heads.
///  - `consistent` (the default): one residual set R for the whole side network (the d/r residual units with
///    the largest total importance over every matrix that reads or writes the residual stream), used by every
///    input column, output row and LayerNorm, so residual additions add matching units; attention rows are
///    chosen head by head, so each side head is a slice of one backbone head.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "../core/tensor.hpp"
#include "../nn/parameter_arena.hpp"

LST_NAMESPACE_BEGIN
namespace init {

enum class PruneSelection { reference, consistent };

inline PruneSelection prune_selection_from_name(const std::string& name) {
  if (name == "reference") return PruneSelection::reference;
  if (name == "consistent") return PruneSelection::consistent;
  detail::raise<Error>("pruning selection '", name, "' is not one of reference, consistent");
}

/// The `keep` indices of `score` with the largest values, ascending (ties: the lower index first).
inline std::vector<index_t> top_indices(const std::vector<double>& score, index_t keep) {
  LST_CHECK(keep >= 0 && keep <= index_t(score.size()), "pruning: cannot keep ", keep, " of ", score.size());
  std::vector<index_t> order(score.size());
  std::iota(order.begin(), order.end(), index_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](index_t a, index_t b) { return score[std::size_t(a)] > score[std::size_t(b)]; });
  order.resize(std::size_t(keep));
  std::sort(order.begin(), order.end());
  return order;
}

/// Row L1 norms of `importance` (rows, cols) over the columns `cols` (every column when empty).
inline std::vector<double> row_l1(ConstView<float> importance, const std::vector<index_t>& cols = {}) {
  const index_t rows = importance.shape().rows(), n = importance.shape().cols();
  std::vector<double> out(std::size_t(rows), 0.0);
  for (index_t r = 0; r < rows; ++r) {
    const float* row = importance.data() + r * n;
    if (cols.empty())
      for (index_t c = 0; c < n; ++c) out[std::size_t(r)] += std::abs(double(row[c]));
    else
      for (index_t c : cols) out[std::size_t(r)] += std::abs(double(row[c]));
  }
  return out;
}

/// Column L1 norms of `importance` (rows, cols) over every row.
inline std::vector<double> col_l1(ConstView<float> importance) {
  const index_t rows = importance.shape().rows(), n = importance.shape().cols();
  std::vector<double> out(std::size_t(n), 0.0);
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < n; ++c) out[std::size_t(c)] += std::abs(double(importance.data()[r * n + c]));
  return out;
}

/// dst (rows.size(), cols.size()) = src[rows, cols]; a rank-1 src (a bias or LayerNorm vector) is sliced by
/// `rows` alone.
template <class T>
void slice_into(ConstView<float> src, const std::vector<index_t>& rows, const std::vector<index_t>& cols,
                const TensorView<T, Cpu>& dst, const std::string& what) {
  if (src.rank() == 1) {
    LST_CHECK_SHAPE(dst.numel() == index_t(rows.size()), "pruning '", what, "': side vector has ",
                    dst.numel(), " elements, selection ", rows.size());
    for (std::size_t i = 0; i < rows.size(); ++i) dst.data()[i] = T(src.data()[rows[i]]);
    return;
  }
  LST_CHECK_SHAPE(dst.shape() == (Shape{index_t(rows.size()), index_t(cols.size())}), "pruning '", what,
                  "': side matrix has shape ", dst.shape(), ", selection is ", rows.size(), " x ",
                  cols.size());
  const index_t n = src.shape().cols();
  for (std::size_t r = 0; r < rows.size(); ++r)
    for (std::size_t c = 0; c < cols.size(); ++c)
      dst.data()[r * cols.size() + c] = T(src.data()[rows[r] * n + cols[c]]);
}

/// Where pruning reads from: the backbone's weights and their importance, by the backbone's parameter names
/// ("encoder.layer.3.ffn.fc1.weight").
struct PruneSource {
  std::function<ConstView<float>(const std::string&)> weight, importance;
};

/// Every selection one side block needs, as indices into the backbone block's dimensions.
struct BlockSelection {
  std::vector<index_t> input;      // residual units the block reads (q, k, v columns; LN of the input side)
  std::vector<index_t> qkv;        // attention inner units (q, k, v rows; output projection columns)
  std::vector<index_t> attention;  // attention output units (output rows, attention LayerNorm, fc1 columns)
  std::vector<index_t> hidden;     // FFN units (fc1 rows, fc2 columns)
  std::vector<index_t> output;     // block output units (fc2 rows, output LayerNorm)
};

namespace detail {
inline std::vector<double> product(std::vector<double> a, const std::vector<double>& b,
                                   const std::vector<double>& c) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] *= b[i] * c[i];
  return a;
}
inline void add_to(std::vector<double>& a, const std::vector<double>& b) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] += b[i];
}
}  // namespace detail

/// The reference's attention rows: the top `width` rows of q, k, v together (scored by the product of
/// their row L1 importances over `cols`), ignoring head boundaries.
inline std::vector<index_t> qkv_rows_reference(const PruneSource& src, const std::string& layer,
                                               const std::vector<index_t>& cols, index_t width) {
  const auto score = detail::product(row_l1(src.importance(layer + ".attention.query.weight"), cols),
                                     row_l1(src.importance(layer + ".attention.key.weight"), cols),
                                     row_l1(src.importance(layer + ".attention.value.weight"), cols));
  return top_indices(score, width);
}

/// Head-aware attention rows: `side_heads` backbone heads (the most important ones; all when the counts are
/// equal), and in each the top width / side_heads rows, so each side head is a slice of one backbone head.
inline std::vector<index_t> qkv_rows_by_head(const PruneSource& src, const std::string& layer,
                                             const std::vector<index_t>& cols, index_t width, index_t heads,
                                             index_t side_heads) {
  const auto score = detail::product(row_l1(src.importance(layer + ".attention.query.weight"), cols),
                                     row_l1(src.importance(layer + ".attention.key.weight"), cols),
                                     row_l1(src.importance(layer + ".attention.value.weight"), cols));
  const index_t D = index_t(score.size()) / heads, per_head = width / side_heads;
  LST_CHECK(width % side_heads == 0 && per_head <= D && side_heads <= heads, "pruning: ", side_heads,
            " side heads of width ", width / std::max<index_t>(side_heads, 1), " cannot be cut from ", heads,
            " backbone heads of width ", D, " (use more side heads)");
  std::vector<double> head_score(std::size_t(heads), 0.0);
  for (index_t h = 0; h < heads; ++h)
    for (index_t i = 0; i < D; ++i) head_score[std::size_t(h)] += score[std::size_t(h * D + i)];
  std::vector<index_t> rows;
  for (index_t h : top_indices(head_score, side_heads)) {
    const std::vector<double> within(score.begin() + h * D, score.begin() + (h + 1) * D);
    for (index_t i : top_indices(within, per_head)) rows.push_back(h * D + i);
  }
  return rows;
}

/// The consistent mode's residual units: the `width` units with the largest importance summed over every
/// kept layer's residual readers (q, k, v, fc1 columns) and writers (attention output, fc2 rows).
inline std::vector<index_t> residual_units(const PruneSource& src, const std::vector<std::string>& layers,
                                           index_t width) {
  std::vector<double> score;
  for (const std::string& l : layers) {
    for (const char* reader :
         {".attention.query.weight", ".attention.key.weight", ".attention.value.weight", ".ffn.fc1.weight"}) {
      const auto c = col_l1(src.importance(l + reader));
      if (score.empty()) score.assign(c.size(), 0.0);
      detail::add_to(score, c);
    }
    for (const char* writer : {".attention.output.weight", ".ffn.fc2.weight"})
      detail::add_to(score, row_l1(src.importance(l + writer)));
  }
  return top_indices(score, width);
}

/// Copies the selected slices of backbone block `layer` ("encoder.layer.3") into side block `block`
/// ("blocks.3") of `side`.
template <class T>
void copy_block(const PruneSource& src, const std::string& layer, const ParameterArena<T, Cpu>& side,
                const std::string& block, const BlockSelection& s) {
  const auto put = [&](const char* name, const std::vector<index_t>& rows, const std::vector<index_t>& cols) {
    slice_into(src.weight(layer + name), rows, cols, side.find(block + name).value(), block + name);
  };
  for (const char* m : {".attention.query", ".attention.key", ".attention.value"}) {
    put((std::string(m) + ".weight").c_str(), s.qkv, s.input);
    put((std::string(m) + ".bias").c_str(), s.qkv, {});
  }
  put(".attention.output.weight", s.attention, s.qkv);
  put(".attention.output.bias", s.attention, {});
  put(".attention_norm.weight", s.attention, {});
  put(".attention_norm.bias", s.attention, {});
  put(".ffn.fc1.weight", s.hidden, s.attention);
  put(".ffn.fc1.bias", s.hidden, {});
  put(".ffn.fc2.weight", s.output, s.hidden);
  put(".ffn.fc2.bias", s.output, {});
  put(".output_norm.weight", s.output, {});
  put(".output_norm.bias", s.output, {});
}

/// Initialises every side block of `side` (a SideNetwork) from the backbone block of the same index.
/// Ladders, gates, the final LayerNorm and the up-projection keep their random init. Returns the
/// selections, in kept-layer order (for reports and tests).
template <class Side>
std::vector<BlockSelection> prune_into(Side& side, const PruneSource& src, index_t backbone_heads,
                                       PruneSelection mode) {
  const auto& arena = side.parameters();
  const index_t w = side.width();
  std::vector<std::string> layers;
  for (index_t l : side.kept()) layers.push_back("encoder.layer." + std::to_string(l));
  const index_t hidden = side.blocks().front().config().hidden;
  const index_t side_heads = side.blocks().front().attention().heads();
  std::vector<BlockSelection> out;
  std::vector<index_t> input;
  if (mode == PruneSelection::reference) {  // the chain starts at the first block's most-read inputs
    auto score = col_l1(src.importance(layers[0] + ".attention.query.weight"));
    detail::add_to(score, col_l1(src.importance(layers[0] + ".attention.key.weight")));
    detail::add_to(score, col_l1(src.importance(layers[0] + ".attention.value.weight")));
    input = top_indices(score, w);
  }
  const std::vector<index_t> residual =
      mode == PruneSelection::consistent ? residual_units(src, layers, w) : std::vector<index_t>{};
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const std::string& l = layers[i];
    BlockSelection s;
    if (mode == PruneSelection::reference) {
      s.input = std::vector<index_t>(input.begin(), input.end());
      s.qkv = qkv_rows_reference(src, l, s.input, w);
      s.attention = top_indices(row_l1(src.importance(l + ".attention.output.weight"), s.qkv), w);
      s.hidden = top_indices(row_l1(src.importance(l + ".ffn.fc1.weight"), s.attention), hidden);
      s.output = top_indices(row_l1(src.importance(l + ".ffn.fc2.weight"), s.hidden), w);
      input = std::vector<index_t>(s.output.begin(), s.output.end());  // the next block reads these outputs
    } else {
      // Constructed, not assigned: GCC 12's -Wnonnull misfires on vector copy-assignment here.
      s.input = std::vector<index_t>(residual.begin(), residual.end());
      s.attention = std::vector<index_t>(residual.begin(), residual.end());
      s.output = std::vector<index_t>(residual.begin(), residual.end());
      s.qkv = qkv_rows_by_head(src, l, residual, w, backbone_heads, side_heads);
      s.hidden = top_indices(row_l1(src.importance(l + ".ffn.fc1.weight"), residual), hidden);
    }
    copy_block(src, l, arena, "blocks." + std::to_string(side.kept()[i]), s);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace init
LST_NAMESPACE_END
