// SPDX-License-Identifier: MIT
/// @file ladder.hpp
/// @brief A ladder (LST, section 2.1): the down-projection that carries one backbone state into the side
///        network, dense d -> d/r with bias (N(0, 0.01), bias 0, as the reference) or low rank d -> k -> d/r
///        (QST). The backbone state is the only backbone tensor LST keeps for backward (its weight gradient
///        needs it), stored as f32 or, to halve that cost, as f16 / bf16 in category `taps`.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "../../core/dtype.hpp"
#include "../../core/initializers.hpp"
#include "../../core/random.hpp"
#include "../../nn/linear.hpp"
#include "lst_config.hpp"

LST_NAMESPACE_BEGIN

template <class T, class Backend = Cpu>
class Ladder {
 public:
  struct Context {
    Tensor<T, Backend> input;                   // (B, T, d) saved state, f32 storage
    Tensor<std::uint16_t, Backend> input_half;  // (B, T, d) saved state, f16 / bf16 bits
    Tensor<T, Backend> middle;                  // (B, T, k) low-rank only: the first projection's output
    std::vector<const T*> input_rows;           // (N) the saved state's rows where they lie (reads_in_place)
    bool rows_in_place = false;                 // input_rows is the saved state (a batch may have N = 0)
    TapDtype dtype = TapDtype::f32;
  };

  /// Registers "<name>.weight", "<name>.bias" (dense) or "<name>.down.weight", "<name>.up.weight",
  /// "<name>.up.bias" (rank k > 0).
  Ladder(ParameterArena<T, Backend>& arena, const std::string& name, index_t in, index_t out, index_t rank)
      : m_name(name) {
    LST_CHECK(rank >= 0 && rank < in, "ladder '", name, "': rank ", rank, " must be 0 (dense) or in [1, ", in,
              ")");
    if (rank == 0) {
      m_dense = std::make_unique<Linear<T, Backend>>(arena, name, in, out);
    } else {
      m_down = std::make_unique<Linear<T, Backend>>(arena, name + ".down", in, rank, /*bias=*/false);
      m_dense = std::make_unique<Linear<T, Backend>>(arena, name + ".up", rank, out);
    }
  }
  index_t in_features() const { return m_down ? m_down->in_features() : m_dense->in_features(); }
  index_t out_features() const { return m_dense->out_features(); }
  /// The projection that produces the output (the whole ladder when dense).
  const Linear<T, Backend>& output_projection() const { return *m_dense; }

  /// The reference's init: weights N(0, 0.01), biases 0 (allocate the arena first).
  void init(Rng& rng) const {
    if (m_down) init::normal(m_down->weight().value(), rng, 0.01);
    init::normal(m_dense->weight().value(), rng, 0.01);
    m_dense->bias().value().set_zero();
  }

  /// y (B, T, d/r) = ladder(x (B, T, d)); training mode saves x in `dtype` (and the low-rank middle).
  Context forward(ConstView<T, Backend> x, TensorView<T, Backend> y, Mode mode, TapDtype dtype) const {
    Context ctx = project(x, y, mode, dtype);
    if (mode == Mode::training) save(ctx, x);
    return ctx;
  }
  /// As above, with an input the caller gives away: a training-mode f32 save keeps `x` itself instead of a
  /// copy when it was allocated as MemCategory::taps (the category the saved input counts in).
  Context forward(Tensor<T, Backend>&& x, TensorView<T, Backend> y, Mode mode, TapDtype dtype) const {
    Context ctx = project(x.cview(), y, mode, dtype);
    if (mode == Mode::training && dtype == TapDtype::f32 && x.category() == MemCategory::taps)
      ctx.input = std::move(x);
    else if (mode == Mode::training)
      save(ctx, x.cview());
    return ctx;
  }
  /// Whether forward() should take `rows` input rows where they lie (a row table) and keep only their
  /// addresses for backward: a dense ladder saving f32 (the others keep a converted or projected copy) whose
  /// products read the table in place (else a packed copy, made once, serves both).
  bool reads_in_place(TapDtype dtype, index_t rows) const {
    return !m_down && dtype == TapDtype::f32 && m_dense->reads_rows_in_place(rows);
  }

  /// As above, with the N input rows where they lie (row i at rows[i], d values each), in place: for
  /// reads_in_place() ladders, whose context keeps the row addresses (the rows must outlive backward). The
  /// bits of forward() on those rows gathered into one block.
  Context forward(std::vector<const T*>&& rows, TensorView<T, Backend> y, Mode mode) const {
    LST_CHECK(!m_down, "ladder '", m_name, "': a low-rank ladder does not read rows in place");
    Context ctx;
    m_dense->apply(RowTable<T>{rows.data(), index_t(rows.size()), in_features()}, y);
    if (mode == Mode::training) {
      ctx.input_rows = std::move(rows);
      ctx.rows_in_place = true;
    }
    return ctx;
  }

  /// Parameter gradients from dy (B, T, d/r); the backbone gets no gradient, so there is no dx. `input`
  /// overrides the saved state (the embedding ladder re-applies its dropout mask to it).
  void backward(const Context& ctx, ConstView<T, Backend> dy, GradMode gm,
                ConstView<T, Backend> input = {}) const {
    if (input.empty() && ctx.rows_in_place) {
      m_dense->weight_gradient(
          RowTable<T>{ctx.input_rows.data(), index_t(ctx.input_rows.size()), in_features()}, dy, gm);
      return;
    }
    Tensor<T, Backend> restored;
    if (input.empty()) {
      LST_CHECK(!ctx.input.empty() || !ctx.input_half.empty(), "ladder '", m_name,
                "': backward needs a training-mode context");
      if (ctx.dtype != TapDtype::f32) restored = restore(ctx);
    }
    const ConstView<T, Backend> x = !input.empty()               ? input
                                    : ctx.dtype == TapDtype::f32 ? ctx.input.cview()
                                                                 : restored.cview();
    if (m_down) {
      Tensor<T, Backend> dmid(ctx.middle.shape());
      m_dense->backward_from(ctx.middle, dy, dmid, gm);
      m_down->backward_from(x, dmid, {}, gm);
    } else {
      m_dense->backward_from(x, dy, {}, gm);
    }
  }

  /// The saved state as T (converted from its storage type, or gathered from where its rows lie).
  Tensor<T, Backend> restore(const Context& ctx) const {
    if (ctx.rows_in_place) {
      Tensor<T, Backend> x(Shape{index_t(ctx.input_rows.size()), in_features()});
      gather_rows<T, Backend>(
          RowTable<T>{ctx.input_rows.data(), index_t(ctx.input_rows.size()), in_features()}, x);
      return x;
    }
    if (ctx.dtype == TapDtype::f32) return ctx.input.clone();
    Tensor<T, Backend> x(ctx.input_half.shape());
    from_half_storage(ctx.dtype, ctx.input_half.data(), x.data(), std::size_t(x.numel()));
    return x;
  }

 private:
  /// y = ladder(x), and the low-rank middle in training mode; the caller saves x.
  Context project(ConstView<T, Backend> x, TensorView<T, Backend> y, Mode mode, TapDtype dtype) const {
    Context ctx;
    ctx.dtype = dtype;
    if (m_down) {
      Tensor<T, Backend> mid(Shape{x.shape().rows(), m_down->out_features()},
                             mode == Mode::training ? MemCategory::activations : MemCategory::workspace);
      m_down->apply(x, mid);
      m_dense->apply(mid, y);
      if (mode == Mode::training) ctx.middle = std::move(mid);
    } else {
      m_dense->apply(x, y);
    }
    return ctx;
  }

  static void save(Context& ctx, ConstView<T, Backend> x) {
    if (ctx.dtype == TapDtype::f32) {
      ctx.input = clone_as(x, MemCategory::taps);
      return;
    }
    ctx.input_half = Tensor<std::uint16_t, Backend>(x.shape(), MemCategory::taps);
    to_half_storage(ctx.dtype, x.data(), ctx.input_half.data(), std::size_t(x.numel()));
  }

  std::string m_name;
  std::unique_ptr<Linear<T, Backend>> m_down, m_dense;  // m_down only for low rank
};

LST_NAMESPACE_END
