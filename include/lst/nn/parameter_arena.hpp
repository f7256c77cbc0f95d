// SPDX-License-Identifier: MIT
/// @file parameter_arena.hpp
/// @brief One allocation per parameter group, every parameter a view into it (llm.c's malloc_and_point).
///
/// A group (the backbone, a side network, one adapter set) registers its tensors, then allocates once:
/// one block of weights and, if the group trains, one block of gradients laid out alike. One block per group
/// makes "which parameters train" a per-group decision, lets an optimizer walk one flat array, and keeps the
/// memory report exact.
#pragma once

#include <string>
#include <vector>

#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

template <class T, class Backend = Cpu>
class ParameterArena;

namespace detail {
/// The gradient shard this thread's layers write into (GradientShardScope); 0 outside any.
inline thread_local int gradient_shard = 0;
}  // namespace detail

/// While alive, parameter gradients that layers on this thread ask for (Param::grad()) are those of shard
/// `shard` of their arena (ParameterArena::set_gradient_shards): data-parallel work on one batch, each shard
/// of it on its own thread writing its own gradients, summed in a fixed order afterwards
/// (ParameterArena::reduce_gradient_shards). Layers take their gradient views on the calling thread, before
/// any parallel loop of theirs, so the scope covers them. Scopes nest; the destructor restores the outer one.
class GradientShardScope {
 public:
  explicit GradientShardScope(int shard) : m_outer(detail::gradient_shard) { detail::gradient_shard = shard; }
  ~GradientShardScope() { detail::gradient_shard = m_outer; }
  GradientShardScope(const GradientShardScope&) = delete;
  GradientShardScope& operator=(const GradientShardScope&) = delete;

 private:
  int m_outer;
};

/// A handle on one parameter of an arena: stable across the arena's allocation (views are not).
template <class T, class Backend = Cpu>
class Param {
 public:
  Param() = default;
  Param(const ParameterArena<T, Backend>* arena, std::size_t index) : m_arena(arena), m_index(index) {}
  TensorView<T, Backend> value() const { return m_arena->value(m_index); }
  /// The gradient; an empty view when the arena holds no gradients (a frozen group).
  TensorView<T, Backend> grad() const { return m_arena->grad(m_index); }
  /// The gradient for a layer about to write it (`kind` and `layer` name it in the error: "Linear", "fc1"). A
  /// frozen group has none, and asking it for gradients is the caller's error.
  TensorView<T, Backend> grad_to_write(const char* kind, const std::string& layer) const {
    const TensorView<T, Backend> g = grad();
    LST_CHECK(g.data() != nullptr, kind, " '", layer, "': parameter gradients requested from a frozen arena");
    return g;
  }
  const std::string& name() const { return m_arena->info(m_index).name; }
  bool valid() const { return m_arena != nullptr; }

 private:
  const ParameterArena<T, Backend>* m_arena = nullptr;
  std::size_t m_index = 0;
};

template <class T, class Backend>
class ParameterArena {
 public:
  struct Info {
    std::string name;
    Shape shape;
    index_t offset;  // in elements, from the start of the block
  };

  /// `name` prefixes every parameter's name ("encoder" -> "encoder.layer.0.attention.query.weight").
  explicit ParameterArena(std::string name = "params") : m_name(std::move(name)) {}
  ParameterArena(const ParameterArena&) = delete;             // handles point at the arena:
  ParameterArena& operator=(const ParameterArena&) = delete;  // it must stay where it was made

  const std::string& name() const { return m_name; }

  /// Registers a parameter; valid until allocate() is called, after which the layout is fixed.
  Param<T, Backend> add(const std::string& name, const Shape& shape) {
    LST_CHECK(!m_allocated, "parameter arena '", m_name, "': cannot add '", name, "' after allocation");
    for (const Info& i : m_info)
      LST_CHECK(i.name != name, "parameter arena '", m_name, "': parameter '", name, "' registered twice");
    // Each parameter starts on an LST_ALIGNMENT boundary, so vector loads of any parameter are aligned.
    constexpr index_t align = LST_ALIGNMENT / sizeof(T) > 0 ? LST_ALIGNMENT / sizeof(T) : 1;
    m_info.push_back({name, shape, (m_size + align - 1) / align * align});
    m_size = m_info.back().offset + shape.numel();
    return Param<T, Backend>(this, m_info.size() - 1);
  }

  /// Allocates the weights block, zeroed, and with `with_gradients` the gradients block, zeroed.
  void allocate(bool with_gradients) {
    LST_CHECK(!m_allocated, "parameter arena '", m_name, "': allocated twice");
    m_allocated = true;
    m_weights = Tensor<T, Backend>::zeros(Shape{m_size}, MemCategory::weights);
    if (with_gradients) m_grads = Tensor<T, Backend>::zeros(Shape{m_size}, MemCategory::gradients);
    m_has_gradients = with_gradients;
  }
  bool allocated() const { return m_allocated; }
  bool has_gradients() const { return m_has_gradients; }

  /// Gradient shards: `shards` blocks of gradients in all, the arena's own and shards - 1 more (tracked as
  /// gradients), for GradientShardScope. 1 (the default) releases the extra blocks.
  void set_gradient_shards(int shards) {
    LST_CHECK(shards >= 1, "parameter arena '", m_name, "': ", shards, " gradient shards (at least 1)");
    LST_CHECK(m_has_gradients || shards == 1, "parameter arena '", m_name,
              "': gradient shards asked of an arena without gradients");
    m_shards.resize(std::size_t(shards - 1));
    for (auto& g : m_shards)
      if (g.numel() != m_size) g = Tensor<T, Backend>::zeros(Shape{m_size}, MemCategory::gradients);
  }
  int gradient_shards() const { return int(m_shards.size()) + 1; }
  /// The arena's gradients += those of shards 1, 2, ... in that order: after each shard wrote its own part of
  /// a batch's gradients (shard 0 into the arena's), their sum, with bits that depend on the shards and not
  /// on the threads that ran them. With `shards`, only the first that many (a batch that had fewer sequences
  /// than shards).
  void reduce_gradient_shards(int shards = -1) {
    const std::size_t n = shards < 0 ? m_shards.size() : std::size_t(std::max(shards - 1, 0));
    LST_CHECK(n <= m_shards.size(), "parameter arena '", m_name, "': ", shards, " gradient shards summed of ",
              gradient_shards());
    for (std::size_t i = 0; i < n; ++i) m_grads += m_shards[i];
  }

  TensorView<T, Backend> value(std::size_t i) const { return point(m_weights, i); }
  /// Parameter i's gradient: in this thread's gradient shard (GradientShardScope) when the arena has shards.
  TensorView<T, Backend> grad(std::size_t i) const {
    if (!has_gradients()) return TensorView<T, Backend>();
    const int shard = detail::gradient_shard;
    if (shard == 0) return point(m_grads, i);
    LST_CHECK(shard < gradient_shards(), "parameter arena '", m_name, "': gradient of '", m_info[i].name,
              "' asked in gradient shard ", shard, " of an arena with ", gradient_shards());
    return point(m_shards[std::size_t(shard - 1)], i);
  }
  /// Every weight as one flat (size()) view, padding included (padding stays zero).
  TensorView<T, Backend> values() const { return m_weights.view(); }
  TensorView<T, Backend> grads() const { return m_grads.view(); }
  void zero_grad() {
    if (has_gradients()) m_grads.set_zero();
  }

  /// Elements in the block, alignment padding included.
  index_t size() const { return m_size; }
  /// Elements of the parameters themselves.
  index_t parameter_count() const {
    index_t n = 0;
    for (const Info& i : m_info) n += i.shape.numel();
    return n;
  }
  std::size_t count() const { return m_info.size(); }
  const Info& info(std::size_t i) const { return m_info[i]; }
  /// The parameter called `name`, or an error listing how many the arena has.
  Param<T, Backend> find(const std::string& name) const {
    for (std::size_t i = 0; i < m_info.size(); ++i)
      if (m_info[i].name == name) return Param<T, Backend>(this, i);
    detail::raise<Error>("parameter arena '", m_name, "': no parameter named '", name, "' among its ",
                         m_info.size());
  }

 private:
  TensorView<T, Backend> point(const Tensor<T, Backend>& block, std::size_t i) const {
    LST_CHECK(m_allocated, "parameter arena '", m_name, "': parameter '", m_info[i].name,
              "' read before allocate()");
    return TensorView<T, Backend>(block.data() + m_info[i].offset, m_info[i].shape);
  }

  std::string m_name;
  std::vector<Info> m_info;
  index_t m_size = 0;
  bool m_allocated = false, m_has_gradients = false;
  Tensor<T, Backend> m_weights, m_grads;
  std::vector<Tensor<T, Backend>> m_shards;  // gradient shards 1, 2, ... (shard 0 is m_grads)
};

LST_NAMESPACE_END
