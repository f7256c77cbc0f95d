// SPDX-License-Identifier: MIT
/// @file parameter_arena.hpp
/// @brief One allocation per parameter group, every parameter a view into it (llm.c's malloc_and_point).
///
/// A group (the backbone, a side network, one adapter set) registers its tensors, each with a role (weight,
/// bias, norm gain, ...), marks which of them train, then allocates once: one block of weights and one block
/// of gradients for the trainable parameters alone. A frozen parameter has no gradient and no optimizer
/// state, and layers compute no gradient product for it (BitFit trains the biases of a frozen backbone, a
/// method may train the LayerNorms only). When every parameter trains, the gradient block is laid out as the
/// weight block, so an optimizer may walk both as flat arrays.
#pragma once

#include <string>
#include <vector>

#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

template <class T, class Backend = Cpu>
class ParameterArena;

/// What a parameter is to its layer: what a PETL method selects by (BitFit: biases; norm tuning: norm gains
/// and biases) and what an optimizer's recipe reads (no weight decay on biases and norms).
enum class ParamRole { weight, bias, norm_gain, norm_bias, embedding, gate, other };

inline const char* to_string(ParamRole r) {
  switch (r) {
    case ParamRole::weight:
      return "weight";
    case ParamRole::bias:
      return "bias";
    case ParamRole::norm_gain:
      return "norm_gain";
    case ParamRole::norm_bias:
      return "norm_bias";
    case ParamRole::embedding:
      return "embedding";
    case ParamRole::gate:
      return "gate";
    case ParamRole::other:
      break;
  }
  return "other";
}

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
  /// The gradient; an empty view when the parameter is frozen (or its whole arena is).
  TensorView<T, Backend> grad() const { return m_arena->grad(m_index); }
  /// The gradient for a layer about to write it, or an empty view when this parameter alone is frozen (the
  /// layer then skips its gradient product). A wholly frozen arena has no gradients at all, and asking it for
  /// some is the caller's error (`kind` and `layer` name the layer in it: "Linear", "fc1").
  TensorView<T, Backend> grad_to_write(const char* kind, const std::string& layer) const {
    LST_CHECK(m_arena->has_gradients(), kind, " '", layer,
              "': parameter gradients requested from a frozen arena");
    return grad();
  }
  const std::string& name() const { return m_arena->info(m_index).name; }
  ParamRole role() const { return m_arena->info(m_index).role; }
  /// Whether the parameter has a gradient (its arena allocated gradients and it was not frozen).
  bool trainable() const { return m_arena->trainable(m_index); }
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
    index_t offset;  // in elements, from the start of the weight block
    ParamRole role = ParamRole::other;
    bool trainable = true;     // fixed by allocate()
    index_t grad_offset = -1;  // in elements, from the start of the gradient block; -1 when frozen
  };

  /// `name` prefixes every parameter's name ("encoder" -> "encoder.layer.0.attention.query.weight").
  explicit ParameterArena(std::string name = "params") : m_name(std::move(name)) {}
  ParameterArena(const ParameterArena&) = delete;             // handles point at the arena:
  ParameterArena& operator=(const ParameterArena&) = delete;  // it must stay where it was made

  const std::string& name() const { return m_name; }

  /// Registers a parameter; valid until allocate() is called, after which the layout is fixed.
  Param<T, Backend> add(const std::string& name, const Shape& shape, ParamRole role = ParamRole::other) {
    LST_CHECK(!m_allocated, "parameter arena '", m_name, "': cannot add '", name, "' after allocation");
    for (const Info& i : m_info)
      LST_CHECK(i.name != name, "parameter arena '", m_name, "': parameter '", name, "' registered twice");
    m_info.push_back({name, shape, aligned(m_size), role});
    m_size = m_info.back().offset + shape.numel();
    return Param<T, Backend>(this, m_info.size() - 1);
  }

  /// Before allocate(): parameter i trains iff `trains(info(i))` (a predicate on the Info: its name, shape,
  /// role). Every parameter trains unless said otherwise.
  template <class Predicate>
  void set_trainable(const Predicate& trains) {
    LST_CHECK(!m_allocated, "parameter arena '", m_name, "': trainability is fixed at allocation");
    for (Info& i : m_info) i.trainable = bool(trains(static_cast<const Info&>(i)));
  }
  /// Before allocate(): whether the parameter called `name` trains.
  void set_trainable(const std::string& name, bool trains) {
    LST_CHECK(!m_allocated, "parameter arena '", m_name, "': trainability is fixed at allocation");
    m_info[index_of(name)].trainable = trains;
  }

  /// Allocates the weight block, zeroed, and with `with_gradients` the gradient block of the trainable
  /// parameters, zeroed. Without, every parameter is frozen.
  void allocate(bool with_gradients) {
    LST_CHECK(!m_allocated, "parameter arena '", m_name, "': allocated twice");
    m_allocated = true;
    m_weights = Tensor<T, Backend>::zeros(Shape{m_size}, MemCategory::weights);
    m_grad_size = 0;
    bool any = m_info.empty();  // an empty arena asked for gradients has them (of nothing)
    for (Info& i : m_info) {
      i.trainable = i.trainable && with_gradients;
      if (!i.trainable) continue;
      any = true;
      i.grad_offset = aligned(m_grad_size);  // all trainable: the weights' offsets
      m_grad_size = i.grad_offset + i.shape.numel();
    }
    m_has_gradients = with_gradients && any;
    if (m_has_gradients) m_grads = Tensor<T, Backend>::zeros(Shape{m_grad_size}, MemCategory::gradients);
  }
  bool allocated() const { return m_allocated; }
  /// Whether any parameter of the arena trains.
  bool has_gradients() const { return m_has_gradients; }
  /// Whether parameter i trains (after allocate()).
  bool trainable(std::size_t i) const { return m_info[i].trainable && m_has_gradients; }
  /// Whether every parameter trains: the gradient block is then laid out as the weight block.
  bool all_trainable() const {
    for (std::size_t i = 0; i < m_info.size(); ++i)
      if (!trainable(i)) return false;
    return m_has_gradients;
  }

  /// Gradient shards: `shards` blocks of gradients in all, the arena's own and shards - 1 more (tracked as
  /// gradients), for GradientShardScope. 1 (the default) releases the extra blocks.
  void set_gradient_shards(int shards) {
    LST_CHECK(shards >= 1, "parameter arena '", m_name, "': ", shards, " gradient shards (at least 1)");
    LST_CHECK(m_has_gradients || shards == 1, "parameter arena '", m_name,
              "': gradient shards asked of an arena without gradients");
    m_shards.resize(std::size_t(shards - 1));
    for (auto& g : m_shards)
      if (g.numel() != m_grad_size) g = Tensor<T, Backend>::zeros(Shape{m_grad_size}, MemCategory::gradients);
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

  TensorView<T, Backend> value(std::size_t i) const { return point(m_weights, m_info[i].offset, i); }
  /// Parameter i's gradient (empty when frozen): in this thread's gradient shard (GradientShardScope) when
  /// the arena has shards.
  TensorView<T, Backend> grad(std::size_t i) const {
    if (!trainable(i)) return TensorView<T, Backend>();
    const int shard = detail::gradient_shard;
    if (shard == 0) return point(m_grads, m_info[i].grad_offset, i);
    LST_CHECK(shard < gradient_shards(), "parameter arena '", m_name, "': gradient of '", m_info[i].name,
              "' asked in gradient shard ", shard, " of an arena with ", gradient_shards());
    return point(m_shards[std::size_t(shard - 1)], m_info[i].grad_offset, i);
  }
  /// Every weight as one flat (size()) view, padding included (padding stays zero).
  TensorView<T, Backend> values() const { return m_weights.view(); }
  /// Every gradient as one flat (gradient_size()) view, padding included.
  TensorView<T, Backend> grads() const { return m_grads.view(); }
  void zero_grad() {
    if (has_gradients()) m_grads.set_zero();
  }

  /// Elements in the weight block, alignment padding included.
  index_t size() const { return m_size; }
  /// Elements in the gradient block (the trainable parameters, alignment padding included).
  index_t gradient_size() const { return m_grad_size; }
  /// Elements of the parameters themselves.
  index_t parameter_count() const {
    index_t n = 0;
    for (const Info& i : m_info) n += i.shape.numel();
    return n;
  }
  /// Elements of the trainable parameters.
  index_t trainable_parameter_count() const {
    index_t n = 0;
    for (std::size_t i = 0; i < m_info.size(); ++i)
      if (trainable(i)) n += m_info[i].shape.numel();
    return n;
  }
  std::size_t count() const { return m_info.size(); }
  const Info& info(std::size_t i) const { return m_info[i]; }
  /// The parameter called `name`, or an error listing how many the arena has.
  Param<T, Backend> find(const std::string& name) const { return Param<T, Backend>(this, index_of(name)); }

 private:
  /// Each parameter starts on an LST_ALIGNMENT boundary, so vector loads of any parameter are aligned.
  static index_t aligned(index_t offset) {
    constexpr index_t align = LST_ALIGNMENT / sizeof(T) > 0 ? LST_ALIGNMENT / sizeof(T) : 1;
    return (offset + align - 1) / align * align;
  }
  std::size_t index_of(const std::string& name) const {
    for (std::size_t i = 0; i < m_info.size(); ++i)
      if (m_info[i].name == name) return i;
    detail::raise<Error>("parameter arena '", m_name, "': no parameter named '", name, "' among its ",
                         m_info.size());
  }
  TensorView<T, Backend> point(const Tensor<T, Backend>& block, index_t offset, std::size_t i) const {
    LST_CHECK(m_allocated, "parameter arena '", m_name, "': parameter '", m_info[i].name,
              "' read before allocate()");
    return TensorView<T, Backend>(block.data() + offset, m_info[i].shape);
  }

  std::string m_name;
  std::vector<Info> m_info;
  index_t m_size = 0, m_grad_size = 0;
  bool m_allocated = false, m_has_gradients = false;
  Tensor<T, Backend> m_weights, m_grads;
  std::vector<Tensor<T, Backend>> m_shards;  // gradient shards 1, 2, ... (shard 0 is m_grads)
};

LST_NAMESPACE_END
