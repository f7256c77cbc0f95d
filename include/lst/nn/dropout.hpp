// SPDX-License-Identifier: MIT
/// @file dropout.hpp
/// @brief Inverted dropout (Srivastava et al. 2014) with a counter-based mask: nothing stored, fully
/// reproducible.
#pragma once

#include <cstdint>
#include <string>

#include "../core/packed_sequences.hpp"
#include "../core/random.hpp"
#include "../core/tensor.hpp"
#include "../ops/dropout.hpp"

LST_NAMESPACE_BEGIN

/// Element i of the call at `step` is kept iff uniform(seed, step, i) >= p; kept elements are scaled by
/// 1 / (1 - p) so that inference needs no rescaling. Backward recomputes the same mask from (seed, step),
/// so the context is two integers, not a (B, T, C) mask. Each Dropout needs its own seed (derive it from the
/// layer index) and each training step its own `step`.
template <class T, class Backend = Cpu>
class Dropout {
 public:
  struct Context {
    std::uint64_t step = 0;
    bool active = false;   // false in inference mode or with p = 0: backward is the identity
    PackedSequences rows;  // packed sequences taking their padded batch's masks (none: the tensor itself)
  };

  Dropout(double p, std::uint64_t seed, std::string name = "dropout")
      : m_p(p), m_seed(seed), m_name(std::move(name)) {
    LST_CHECK(p >= 0.0 && p < 1.0, "Dropout '", m_name, "': probability ", p, " is outside [0, 1)");
  }
  double p() const { return m_p; }

  /// y = x * mask / (1 - p) in training, y = x in inference. y may alias x.
  ///
  /// `rows`: x holds packed sequences (rows->rows() rows, core/packed_sequences.hpp), and each row takes the
  /// mask of its position in the padded batch they came from: a layer that computes only real tokens, or
  /// only each sequence's first rows, drops exactly what the padded layer drops.
  Context forward(ConstView<T, Backend> x, TensorView<T, Backend> y, Mode mode, std::uint64_t step,
                  const PackedSequences* rows = nullptr) const {
    LST_CHECK_SHAPE(y.shape() == x.shape(), "Dropout '", m_name, "': output y has shape ", y.shape(),
                    ", expected the input's shape ", x.shape());
    LST_CHECK(!rows || (rows->rows() > 0 && x.numel() % rows->rows() == 0), "Dropout '", m_name,
              "': ", rows ? rows->rows() : 0, " packed rows do not tile an input of ", x.numel(),
              " elements");
    const Context ctx = context(mode, step, rows);
    apply(ctx, x, y);
    return ctx;
  }
  /// As above, with x's rows where they lie: row i of x at x_rows[i], as many values as y's rows have. The
  /// bits of forward() on those rows gathered into one block, in one pass instead of a copy and a pass (the
  /// side network's embeddings read from the tap cache).
  Context forward(const T* const* x_rows, TensorView<T, Backend> y, Mode mode, std::uint64_t step,
                  const PackedSequences* rows = nullptr) const {
    const index_t R = y.shape().rows(), C = R > 0 ? y.numel() / R : 0;
    LST_CHECK(!rows || rows->rows() == R, "Dropout '", m_name, "': ", rows ? rows->rows() : 0,
              " packed rows for an output of ", R, " rows");
    const Context ctx = context(mode, step, rows);
    const RowTable<T> table{x_rows, R, C};
    if (ctx.active)
      dropout_rows<T, Backend>(key(ctx), p_float(), scale(), table, y, &ctx.rows);
    else
      copy_rows<T, Backend>(table, y);
    return ctx;
  }

  /// dx = dy * mask / (1 - p), the same mask as forward. dx may alias dy.
  void backward(const Context& ctx, ConstView<T, Backend> dy, TensorView<T, Backend> dx) const {
    LST_CHECK_SHAPE(dx.shape() == dy.shape(), "Dropout '", m_name, "': input gradient dx has shape ",
                    dx.shape(), ", expected dy's shape ", dy.shape());
    apply(ctx, dy, dx);
  }

 private:
  Context context(Mode mode, std::uint64_t step, const PackedSequences* rows) const {
    Context ctx{step, mode == Mode::training && m_p > 0.0, {}};
    if (rows && ctx.active) ctx.rows = *rows;
    return ctx;
  }

  /// A contiguous tensor: one flat span (any tensor, whatever its rank), or packed rows taking their padded
  /// positions' masks.
  void apply(const Context& ctx, ConstView<T, Backend> in, TensorView<T, Backend> out) const {
    if (!ctx.active) {
      out.assign(in);
      return;
    }
    if (ctx.rows.count() > 0) {
      const index_t R = ctx.rows.rows(), C = in.numel() / R;
      dropout_rows<T, Backend>(key(ctx), p_float(), scale(), in.reshape(Shape{R, C}),
                               out.reshape(Shape{R, C}), &ctx.rows);
      return;
    }
    dropout_flat<T, Backend>(key(ctx), p_float(), scale(), in, out);
  }
  T scale() const { return T(1.0 / (1.0 - m_p)); }
  float p_float() const { return static_cast<float>(m_p); }
  /// The mask's stream: a pure function of (seed, step), so forward and backward draw the same.
  std::uint64_t key(const Context& ctx) const { return stream_key(m_seed, ctx.step); }

  double m_p;
  std::uint64_t m_seed;
  std::string m_name;
};

LST_NAMESPACE_END
