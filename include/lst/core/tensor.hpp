// SPDX-License-Identifier: MIT
/// @file tensor.hpp
/// @brief Tensor<T, Backend> (owning, row-major, rank <= 4) and TensorView<T, Backend> (non-owning).
///
/// Assigning an expression to either evaluates it through `Executor<Backend>` (backends/<name>/), so this
/// header declares what a backend must provide and the backend headers define it; `lst/lst.hpp` includes
/// both.
#pragma once

#include <type_traits>
#include <utility>
#include <vector>

#include "allocator.hpp"
#include "expression.hpp"
#include "reduction.hpp"

LST_NAMESPACE_BEGIN

/// Evaluates expressions into tensors of one backend: `assign(dst, expr)` for elementwise expressions and
/// reductions, `copy(src, dst)`, `fill(dst, value)`. Defined in backends/<backend>/executor.hpp.
template <class Backend>
struct Executor;

template <class E>
inline constexpr bool is_assignable_expr_v = is_operand_v<E> || is_reduction<E>::value;

namespace detail {
template <class E, class Backend>
constexpr bool assignable_on() {
  if constexpr (is_reduction<E>::value)
    return evaluable_on_v<decltype(E::expr), Backend>;
  else
    return evaluable_on_v<E, Backend>;
}
}  // namespace detail

/// Whether an expression or a reduction may be assigned to a tensor of `Backend`: every tensor it reads is of
/// `Backend` (or it reads none). `Executor<Backend>::assign` requires it.
template <class E, class Backend>
inline constexpr bool assignable_on_v = detail::assignable_on<E, Backend>();

/// A non-owning window on contiguous row-major memory: a pointer and a shape.
///
/// Copying a view copies the handle (like std::span). Writing data through a view is explicit:
/// `v = expression` evaluates into it, `v.assign(other)` copies another view's elements. Plain `v = w`
/// between views is deleted on purpose, because either meaning (rebind or copy) would surprise half of its
/// readers. `T` may be const: `TensorView<const float>` reads only, and every `TensorView<float>` converts to
/// it.
template <class T, class Backend>
class TensorView {
 public:
  using value_type = std::remove_const_t<T>;
  using element_type = T;
  using backend = Backend;

  TensorView() = default;
  TensorView(T* data, const Shape& shape) : m_data(data), m_shape(shape) {}
  TensorView(const TensorView&) = default;
  /// A writable view converts to a read-only one.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  TensorView(const TensorView<U, Backend>& other) : m_data(other.data()), m_shape(other.shape()) {}
  TensorView& operator=(const TensorView&) = delete;

  T* data() const noexcept { return m_data; }
  const Shape& shape() const noexcept { return m_shape; }
  int rank() const noexcept { return m_shape.rank; }
  index_t dim(int axis) const noexcept { return m_shape.dims[axis < 0 ? axis + m_shape.rank : axis]; }
  index_t numel() const noexcept { return m_shape.numel(); }
  /// True for a view of nothing (default-constructed): the library's "not needed" argument.
  bool empty() const noexcept { return m_data == nullptr; }

  /// Sub-tensor `i` along the leading axis: rank drops by one.
  TensorView operator[](index_t i) const {
    LST_CHECK_SHAPE(m_shape.rank >= 1 && i >= 0 && i < m_shape.dims[0], "index ", i,
                    " out of range for a tensor of shape ", m_shape);
    const Shape sub = m_shape.drop_leading();
    return TensorView(m_data + i * sub.numel(), sub);
  }
  /// Rows [begin, end) along the leading axis: rank kept.
  TensorView slice(index_t begin, index_t end) const {
    LST_CHECK_SHAPE(m_shape.rank >= 1 && 0 <= begin && begin <= end && end <= m_shape.dims[0], "slice [",
                    begin, ", ", end, ") out of range for a tensor of shape ", m_shape);
    const index_t row = m_shape.numel() / (m_shape.dims[0] == 0 ? 1 : m_shape.dims[0]);
    return TensorView(m_data + begin * row, m_shape.with_leading(end - begin));
  }
  /// The same elements under another shape with as many elements.
  TensorView reshape(const Shape& shape) const {
    LST_CHECK_SHAPE(shape.numel() == numel(), "reshape: cannot view a tensor of shape ", m_shape, " as ",
                    shape);
    return TensorView(m_data, shape);
  }
  /// (rows, cols): every leading axis folded into the first, the way GEMM sees an activation.
  TensorView as_matrix() const { return TensorView(m_data, Shape{m_shape.rows(), m_shape.cols()}); }

  /// Evaluates an expression or a reduction into this view, in one pass (see Executor).
  template <class E, class = std::enable_if_t<is_assignable_expr_v<E>>>
  const TensorView& operator=(const E& e) const {
    static_assert(!std::is_const_v<T>, "lst: cannot assign through a read-only TensorView");
    static_assert(assignable_on_v<E, Backend>,
                  "lst: the expression reads tensors of another backend than the destination's; copy them to "
                  "its backend first");
    Executor<Backend>::assign(*this, e);
    return *this;
  }
  /// dst += e: elementwise as `dst = dst + e` (safe: each element reads only itself), or, for col_sum, an
  /// accumulating column reduction (bias gradients in GradMode::accumulate).
  template <class E, class = std::enable_if_t<is_assignable_expr_v<E> || std::is_arithmetic_v<E>>>
  const TensorView& operator+=(const E& e) const {
    static_assert(!std::is_const_v<T>, "lst: cannot assign through a read-only TensorView");
    if constexpr (is_reduction<E>::value) {
      static_assert(is_col_sum<E>::value, "lst: only col_sum can be accumulated with +=");
      E acc = e;
      acc.accumulate = true;
      Executor<Backend>::assign(*this, acc);
    } else {
      Executor<Backend>::assign(*this, *this + e);
    }
    return *this;
  }
  /// Copies the elements of a view of the same shape.
  template <class U>
  const TensorView& assign(const TensorView<U, Backend>& src) const {
    static_assert(!std::is_const_v<T>, "lst: cannot assign through a read-only TensorView");
    Executor<Backend>::copy(TensorView<const value_type, Backend>(src), *this);
    return *this;
  }
  const TensorView& fill(value_type v) const {
    Executor<Backend>::fill(*this, v);
    return *this;
  }
  const TensorView& set_zero() const { return fill(value_type(0)); }

  // Element access on host memory, for tests, examples and loaders (kernels use pointers).
  template <class... I>
  T& operator()(I... idx) const {
    static_assert(is_host_backend_v<Backend>, "lst: element access needs host memory");
    static_assert(sizeof...(I) <= max_rank, "lst: too many indices");
    const index_t ids[] = {static_cast<index_t>(idx)...};
    LST_CHECK_SHAPE(int(sizeof...(I)) == m_shape.rank, "element access with ", sizeof...(I),
                    " indices into a tensor of shape ", m_shape);
    index_t offset = 0;
    for (int a = 0; a < m_shape.rank; ++a) {
      LST_CHECK_SHAPE(ids[a] >= 0 && ids[a] < m_shape.dims[a], "index ", ids[a], " out of range at axis ", a,
                      " of a tensor of shape ", m_shape);
      offset = offset * m_shape.dims[a] + ids[a];
    }
    return m_data[offset];
  }
  std::vector<value_type> to_vector() const {
    static_assert(is_host_backend_v<Backend>, "lst: to_vector needs host memory");
    return std::vector<value_type>(m_data, m_data + numel());
  }

 private:
  T* m_data = nullptr;
  Shape m_shape{0};  // an empty view has no elements (a rank-0 shape would claim one)
};

template <class T, class Backend = Cpu>
using ConstView = TensorView<const T, Backend>;

/// An owning tensor: one tracked allocation of numel() elements in category `category()`. Move-only;
/// `clone()` copies explicitly. Elements start uninitialised (use `zeros`/`full` or assign).
template <class T, class Backend>
class Tensor {
  static_assert(std::is_same_v<T, std::remove_cv_t<T>>, "lst: Tensor owns mutable elements; use ConstView");

 public:
  using value_type = T;
  using element_type = T;
  using backend = Backend;

  Tensor() = default;
  explicit Tensor(const Shape& shape, MemCategory category = MemCategory::workspace)
      : m_buffer(static_cast<std::size_t>(shape.numel()), category), m_shape(shape) {}
  Tensor(Tensor&& o) noexcept
      : m_buffer(std::move(o.m_buffer)), m_shape(std::exchange(o.m_shape, Shape{0})) {}
  Tensor& operator=(Tensor&& o) noexcept {
    m_buffer = std::move(o.m_buffer);
    m_shape = std::exchange(o.m_shape, Shape{0});  // a moved-from tensor is empty, shape included
    return *this;
  }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  static Tensor zeros(const Shape& shape, MemCategory category = MemCategory::workspace) {
    return full(shape, T(0), category);
  }
  static Tensor full(const Shape& shape, T value, MemCategory category = MemCategory::workspace) {
    Tensor t(shape, category);
    t.fill(value);
    return t;
  }
  /// A new tensor with this one's elements, in `category` (default: this one's).
  Tensor clone() const { return clone(category()); }
  Tensor clone(MemCategory category) const {
    Tensor t(m_shape, category);
    t.view().assign(cview());
    return t;
  }

  /// Gives the tensor `shape`, reallocating only when the element count changes; contents are then undefined.
  void resize(const Shape& shape) {
    if (static_cast<std::size_t>(shape.numel()) != m_buffer.size())
      m_buffer = detail::Buffer<T, Backend>(static_cast<std::size_t>(shape.numel()), category());
    m_shape = shape;
  }

  TensorView<T, Backend> view() const { return {m_buffer.data(), m_shape}; }
  ConstView<T, Backend> cview() const { return {m_buffer.data(), m_shape}; }
  operator TensorView<T, Backend>() const { return view(); }
  operator ConstView<T, Backend>() const { return cview(); }

  T* data() const noexcept { return m_buffer.data(); }
  const Shape& shape() const noexcept { return m_shape; }
  int rank() const noexcept { return m_shape.rank; }
  index_t dim(int axis) const noexcept { return view().dim(axis); }
  index_t numel() const noexcept { return m_shape.numel(); }
  /// True when nothing is allocated (default-constructed, moved-from, or zero elements).
  bool empty() const noexcept { return data() == nullptr; }
  MemCategory category() const noexcept { return m_buffer.category(); }

  TensorView<T, Backend> operator[](index_t i) const { return view()[i]; }
  TensorView<T, Backend> slice(index_t b, index_t e) const { return view().slice(b, e); }
  TensorView<T, Backend> reshape(const Shape& s) const { return view().reshape(s); }
  TensorView<T, Backend> as_matrix() const { return view().as_matrix(); }

  template <class E, class = std::enable_if_t<is_assignable_expr_v<E> && !std::is_same_v<E, Tensor>>>
  Tensor& operator=(const E& e) {
    view() = e;
    return *this;
  }
  template <class E, class = std::enable_if_t<is_assignable_expr_v<E> || std::is_arithmetic_v<E>>>
  Tensor& operator+=(const E& e) {
    view() += e;
    return *this;
  }
  Tensor& fill(T v) {
    view().fill(v);
    return *this;
  }
  Tensor& set_zero() { return fill(T(0)); }
  template <class... I>
  T& operator()(I... idx) const {
    return view()(idx...);
  }
  std::vector<T> to_vector() const { return view().to_vector(); }

 private:
  detail::Buffer<T, Backend> m_buffer;
  Shape m_shape{0};  // a default tensor has no elements
};

template <class T, class B>
struct is_tensor<Tensor<T, B>> : std::true_type {};
template <class T, class B>
struct is_tensor<TensorView<T, B>> : std::true_type {};

/// A new tensor in `category` holding a copy of `x`.
template <class T, class Backend>
Tensor<std::remove_const_t<T>, Backend> clone_as(const TensorView<T, Backend>& x, MemCategory category) {
  Tensor<std::remove_const_t<T>, Backend> t(x.shape(), category);
  t.view().assign(x);
  return t;
}

/// Copies src into dst (same shape).
template <class T, class U, class B>
void copy(const TensorView<U, B>& src, const TensorView<T, B>& dst) {
  dst.assign(src);
}

LST_NAMESPACE_END
