// SPDX-License-Identifier: MIT
/// @file expression.hpp
/// @brief Expression templates for elementwise arithmetic with numpy-style broadcasting (Eigen's
/// CwiseBinaryOp).
///
/// `y = (x - mean) * rstd * gamma + beta` builds a tree of small nodes and evaluates it in one pass when
/// assigned: no temporary tensor, one read of each operand, one write of y. Nodes hold pointers, never data,
/// so building a tree costs nothing and an expression must not outlive the tensors it reads.
///
/// Node interface (what an executor calls, after `bind(out_shape)`):
///   value_type            element type (float or double)
///   backend               the backend tag whose memory the leaves read (Cpu, Cuda, ...), or void for an
///                         expression of scalars only; leaves of two backends in one tree do not compile
///   shape()               the shape the expression has on its own (broadcast of its operands)
///   bind(out)             fix the broadcast strides for writing into a tensor of shape `out`
///   linear()              true when every operand has the shape of `out` (one flat loop suffices)
///   at(i)                 element i of the flat loop (only when linear())
///   seek(i0, i1, i2, c0)  move to columns [c0, c0 + expr_chunk) of a row of the (padded to rank 4) output;
///                         then at_col(j) reads column c0 + j
#pragma once

#include <algorithm>
#include <array>
#include <type_traits>

#include "functors.hpp"
#include "shape.hpp"

LST_NAMESPACE_BEGIN

namespace detail {
/// Right-aligned rank-4 padding of a shape, numpy's broadcasting convention.
inline std::array<index_t, max_rank> pad4(const Shape& s) {
  std::array<index_t, max_rank> d{1, 1, 1, 1};
  for (int i = 0; i < s.rank; ++i) d[max_rank - s.rank + i] = s.dims[i];
  return d;
}

/// The shape two operands broadcast to, or a ShapeError naming both.
inline Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const Shape& big = a.rank >= b.rank ? a : b;
  Shape out = big;
  const auto pa = pad4(a), pb = pad4(b);
  for (int i = 0; i < big.rank; ++i) {
    const int k = max_rank - big.rank + i;
    LST_CHECK_SHAPE(pa[k] == pb[k] || pa[k] == 1 || pb[k] == 1, "broadcast: shapes ", a, " and ", b,
                    " are incompatible at axis ", i);
    out.dims[i] = pa[k] == 1 ? pb[k] : pa[k];
  }
  return out;
}
}  // namespace detail

/// Columns per step of the broadcasting (non-flat) evaluation loop: long enough to vectorise, short enough
/// that a broadcast operand's splat buffer stays in L1.
inline constexpr index_t expr_chunk = 64;

/// Base of every node (CRTP tag), so operators accept exactly lst's expressions and tensors.
template <class Derived>
struct ExprBase {
  const Derived& derived() const { return static_cast<const Derived&>(*this); }
};

namespace detail {
/// The backend of a node with operands of backends A and B: void (a scalar's: none) takes the other one's;
/// two different backends are an error, since no executor reads two memories in one pass.
template <class A, class B>
struct common_backend {
  static_assert(std::is_void_v<A> || std::is_void_v<B> || std::is_same_v<A, B>,
                "lst: operands of an expression live on different backends (e.g. Cpu and Cuda); copy one "
                "operand to the other's backend first");
  using type = std::conditional_t<std::is_void_v<A>, B, A>;
};
template <class A, class B>
using common_backend_t = typename common_backend<A, B>::type;
}  // namespace detail

/// A tensor of backend `Backend` read as an operand: a pointer, its shape, and broadcast strides set by
/// bind().
template <class T, class Backend>
class LeafExpr : public ExprBase<LeafExpr<T, Backend>> {
 public:
  using value_type = std::remove_const_t<T>;
  using backend = Backend;
  LeafExpr(const value_type* data, const Shape& shape) : m_data(data), m_shape(shape) {}

  const Shape& shape() const { return m_shape; }
  void bind(const Shape& out) {
    const auto own = detail::pad4(m_shape), target = detail::pad4(out);
    LST_CHECK_SHAPE(m_shape.rank <= out.rank, "broadcast: operand of shape ", m_shape,
                    " cannot be assigned to a tensor of lower rank, shape ", out);
    index_t stride = 1;
    m_same = true;
    for (int k = max_rank - 1; k >= 0; --k) {
      LST_CHECK_SHAPE(own[k] == target[k] || own[k] == 1, "broadcast: operand of shape ", m_shape,
                      " does not broadcast to ", out);
      m_stride[k] = own[k] == 1 ? 0 : stride;  // a size-1 axis repeats: stride 0
      if (own[k] != target[k]) m_same = false;
      stride *= own[k];
    }
  }
  bool linear() const { return m_same; }
  /// After bind(): whether this operand is broadcast and its memory intersects [lo, hi).
  template <class U>
  bool broadcast_overlaps(const U* lo, const U* hi) const {
    const auto* b = reinterpret_cast<const char*>(m_data);
    const auto* e = reinterpret_cast<const char*>(m_data + m_shape.numel());
    return !m_same && b < reinterpret_cast<const char*>(hi) && reinterpret_cast<const char*>(lo) < e;
  }
  LST_ALWAYS_INLINE value_type at(index_t i) const { return m_data[i]; }
  LST_ALWAYS_INLINE void seek(index_t i0, index_t i1, index_t i2, index_t c0) {
    const value_type* row = m_data + i0 * m_stride[0] + i1 * m_stride[1] + i2 * m_stride[2];
    if (m_stride[3] != 0) {
      m_ptr = row + c0;
      return;
    }
    // A column broadcast (one value per row) reads from a splat of that value, so that every operand of the
    // chunk loop is a plain unit-stride array and the loop vectorises.
    if (row != m_splat_source) {
      std::fill(m_splat, m_splat + expr_chunk, *row);
      m_splat_source = row;
    }
    m_ptr = m_splat;
  }
  LST_ALWAYS_INLINE value_type at_col(index_t j) const { return m_ptr[j]; }
  /// The tensor's first element: bound to its own shape (linear()), its rows lie one after the other.
  const value_type* data() const { return m_data; }

 private:
  const value_type* m_data;
  const value_type* m_ptr = nullptr;           // columns of the current chunk
  const value_type* m_splat_source = nullptr;  // the element m_splat repeats
  value_type m_splat[expr_chunk];
  Shape m_shape;
  std::array<index_t, max_rank> m_stride{};
  bool m_same = true;
};

/// A scalar operand: broadcasts to anything.
template <class T>
class ScalarExpr : public ExprBase<ScalarExpr<T>> {
 public:
  using value_type = T;
  using backend = void;  // a number lives on no backend: it combines with any
  explicit ScalarExpr(T v) : m_value(v) {}
  Shape shape() const { return Shape{}; }
  void bind(const Shape&) {}
  template <class U>
  bool broadcast_overlaps(const U*, const U*) const {
    return false;
  }
  bool linear() const { return true; }
  LST_ALWAYS_INLINE T at(index_t) const { return m_value; }
  LST_ALWAYS_INLINE void seek(index_t, index_t, index_t, index_t) {}
  LST_ALWAYS_INLINE T at_col(index_t) const { return m_value; }

 private:
  T m_value;
};

template <class Op, class A>
class UnaryExpr : public ExprBase<UnaryExpr<Op, A>> {
 public:
  using value_type = typename A::value_type;
  using backend = typename A::backend;
  explicit UnaryExpr(const A& a) : m_a(a) {}
  Shape shape() const { return m_a.shape(); }
  void bind(const Shape& out) { m_a.bind(out); }
  template <class U>
  bool broadcast_overlaps(const U* lo, const U* hi) const {
    return m_a.broadcast_overlaps(lo, hi);
  }
  bool linear() const { return m_a.linear(); }
  LST_ALWAYS_INLINE value_type at(index_t i) const { return Op{}(m_a.at(i)); }
  LST_ALWAYS_INLINE void seek(index_t i0, index_t i1, index_t i2, index_t c0) { m_a.seek(i0, i1, i2, c0); }
  LST_ALWAYS_INLINE value_type at_col(index_t j) const { return Op{}(m_a.at_col(j)); }

 private:
  A m_a;
};

template <class Op, class A, class B>
class BinaryExpr : public ExprBase<BinaryExpr<Op, A, B>> {
  static_assert(std::is_same_v<typename A::value_type, typename B::value_type>,
                "lst: operands of an expression must have the same element type (convert explicitly)");

 public:
  using value_type = typename A::value_type;
  using backend = detail::common_backend_t<typename A::backend, typename B::backend>;
  BinaryExpr(const A& a, const B& b) : m_a(a), m_b(b) {}
  Shape shape() const { return detail::broadcast_shapes(m_a.shape(), m_b.shape()); }
  void bind(const Shape& out) {
    m_a.bind(out);
    m_b.bind(out);
  }
  template <class U>
  bool broadcast_overlaps(const U* lo, const U* hi) const {
    return m_a.broadcast_overlaps(lo, hi) || m_b.broadcast_overlaps(lo, hi);
  }
  bool linear() const { return m_a.linear() && m_b.linear(); }
  LST_ALWAYS_INLINE value_type at(index_t i) const { return Op{}(m_a.at(i), m_b.at(i)); }
  LST_ALWAYS_INLINE void seek(index_t i0, index_t i1, index_t i2, index_t c0) {
    m_a.seek(i0, i1, i2, c0);
    m_b.seek(i0, i1, i2, c0);
  }
  LST_ALWAYS_INLINE value_type at_col(index_t j) const { return Op{}(m_a.at_col(j), m_b.at_col(j)); }

 private:
  A m_a;
  B m_b;
};

/// `where(c, a, b)`: a where c is non-zero, else b. Both branches are evaluated (no divergence on a GPU).
template <class C, class A, class B>
class WhereExpr : public ExprBase<WhereExpr<C, A, B>> {
 public:
  using value_type = typename A::value_type;
  using backend =
      detail::common_backend_t<typename C::backend,
                               detail::common_backend_t<typename A::backend, typename B::backend>>;
  WhereExpr(const C& c, const A& a, const B& b) : m_c(c), m_a(a), m_b(b) {}
  Shape shape() const {
    return detail::broadcast_shapes(m_c.shape(), detail::broadcast_shapes(m_a.shape(), m_b.shape()));
  }
  void bind(const Shape& out) {
    m_c.bind(out);
    m_a.bind(out);
    m_b.bind(out);
  }
  template <class U>
  bool broadcast_overlaps(const U* lo, const U* hi) const {
    return m_c.broadcast_overlaps(lo, hi) || m_a.broadcast_overlaps(lo, hi) || m_b.broadcast_overlaps(lo, hi);
  }
  bool linear() const { return m_c.linear() && m_a.linear() && m_b.linear(); }
  LST_ALWAYS_INLINE value_type at(index_t i) const {
    return m_c.at(i) != typename C::value_type(0) ? m_a.at(i) : m_b.at(i);
  }
  LST_ALWAYS_INLINE void seek(index_t i0, index_t i1, index_t i2, index_t c0) {
    m_c.seek(i0, i1, i2, c0);
    m_a.seek(i0, i1, i2, c0);
    m_b.seek(i0, i1, i2, c0);
  }
  LST_ALWAYS_INLINE value_type at_col(index_t j) const {
    return m_c.at_col(j) != typename C::value_type(0) ? m_a.at_col(j) : m_b.at_col(j);
  }

 private:
  C m_c;
  A m_a;
  B m_b;
};

// ---------------------------------------------------------------------------------------------------------
// Operand conversion: nodes pass through, tensors become leaves of their backend, arithmetic scalars become
// ScalarExpr of the other operand's element type.

template <class T>
struct is_expr : std::is_base_of<ExprBase<T>, T> {};

/// Specialised by tensor.hpp for Tensor and TensorView.
template <class T>
struct is_tensor : std::false_type {};

template <class T>
inline constexpr bool is_operand_v = is_expr<T>::value || is_tensor<T>::value;

namespace detail {
template <class X>
auto as_expr(const X& x) {
  if constexpr (is_expr<X>::value)
    return x;
  else
    return LeafExpr<const typename X::value_type, typename X::backend>(x.data(), x.shape());
}
template <class X>
using expr_t = decltype(as_expr(std::declval<X>()));

/// Converts an operand to a node: a scalar takes the element type `V` of the other side.
template <class V, class X>
auto operand(const X& x) {
  if constexpr (std::is_arithmetic_v<X>)
    return ScalarExpr<V>(static_cast<V>(x));
  else
    return as_expr(x);
}

template <class X, bool = is_operand_v<X>>
struct operand_value {
  using type = void;
};
template <class X>
struct operand_value<X, true> {
  using type = typename expr_t<X>::value_type;
};
/// Element type of a binary expression: that of its first lst operand (a number adopts it).
template <class A, class B>
struct binary_value {
  using type =
      std::conditional_t<is_operand_v<A>, typename operand_value<A>::type, typename operand_value<B>::type>;
};
}  // namespace detail

/// The backend an operand (a node or a tensor) reads from: its leaves' backend, or void when it has no leaf.
template <class X>
using expr_backend_t = typename detail::expr_t<X>::backend;

/// Whether an executor of `Backend` may evaluate an operand: its leaves are all of `Backend` (or it has
/// none).
template <class X, class Backend>
inline constexpr bool evaluable_on_v =
    std::is_void_v<expr_backend_t<X>> || std::is_same_v<expr_backend_t<X>, Backend>;

/// A tensor as an expression operand: `y = expr(b)` broadcasts b into y (view-to-view `=` is deleted).
template <class X, class = std::enable_if_t<is_operand_v<X>>>
auto expr(const X& x) {
  return detail::as_expr(x);
}

/// Enables the operators for two operands when at least one is lst's and the other is lst's or a number.
template <class A, class B>
using enable_binary_t = std::enable_if_t<(is_operand_v<A> && (is_operand_v<B> || std::is_arithmetic_v<B>)) ||
                                         (std::is_arithmetic_v<A> && is_operand_v<B>)>;

template <class Op, class A, class B>
auto make_binary(const A& a, const B& b) {
  using V = typename detail::binary_value<A, B>::type;
  auto ea = detail::operand<V>(a);
  auto eb = detail::operand<V>(b);
  return BinaryExpr<Op, decltype(ea), decltype(eb)>(ea, eb);
}
template <class Op, class A>
auto make_unary(const A& a) {
  static_assert(is_operand_v<A>, "lst: expected a tensor or an expression");
  auto ea = detail::as_expr(a);
  return UnaryExpr<Op, decltype(ea)>(ea);
}

template <class A, class B, class = enable_binary_t<A, B>>
auto operator+(const A& a, const B& b) {
  return make_binary<op::Add>(a, b);
}
template <class A, class B, class = enable_binary_t<A, B>>
auto operator-(const A& a, const B& b) {
  return make_binary<op::Sub>(a, b);
}
template <class A, class B, class = enable_binary_t<A, B>>
auto operator*(const A& a, const B& b) {
  return make_binary<op::Mul>(a, b);
}
template <class A, class B, class = enable_binary_t<A, B>>
auto operator/(const A& a, const B& b) {
  return make_binary<op::Div>(a, b);
}
template <class A, class = std::enable_if_t<is_operand_v<A>>>
auto operator-(const A& a) {
  return make_unary<op::Neg>(a);
}

template <class A, class B, class = enable_binary_t<A, B>>
auto maximum(const A& a, const B& b) {
  return make_binary<op::Max>(a, b);
}
template <class A, class B, class = enable_binary_t<A, B>>
auto minimum(const A& a, const B& b) {
  return make_binary<op::Min>(a, b);
}
/// 1 where a > b, else 0 (in the element type), for use with where().
template <class A, class B, class = enable_binary_t<A, B>>
auto greater(const A& a, const B& b) {
  return make_binary<op::Greater>(a, b);
}
template <class A, class B, class = enable_binary_t<A, B>>
auto less(const A& a, const B& b) {
  return make_binary<op::Less>(a, b);
}

template <class C, class A, class B>
auto where(const C& c, const A& a, const B& b) {
  using V = typename detail::binary_value<A, B>::type;
  auto ec = detail::as_expr(c);
  auto ea = detail::operand<V>(a);
  auto eb = detail::operand<V>(b);
  return WhereExpr<decltype(ec), decltype(ea), decltype(eb)>(ec, ea, eb);
}

// Constrained to lst's operands, so that an unqualified exp(x) on a float inside namespace lst never lands
// here.
#define LST_DEFINE_UNARY_FUNCTION(name, Op)                     \
  template <class A, class = std::enable_if_t<is_operand_v<A>>> \
  auto name(const A& a) {                                       \
    return make_unary<op::Op>(a);                               \
  }
LST_DEFINE_UNARY_FUNCTION(exp, Exp)
LST_DEFINE_UNARY_FUNCTION(log, Log)
LST_DEFINE_UNARY_FUNCTION(tanh, Tanh)
LST_DEFINE_UNARY_FUNCTION(sqrt, Sqrt)
LST_DEFINE_UNARY_FUNCTION(rsqrt, Rsqrt)
LST_DEFINE_UNARY_FUNCTION(abs, Abs)
LST_DEFINE_UNARY_FUNCTION(square, Square)
LST_DEFINE_UNARY_FUNCTION(sigmoid, Sigmoid)
LST_DEFINE_UNARY_FUNCTION(relu, Relu)
LST_DEFINE_UNARY_FUNCTION(gelu, GeluErf)
LST_DEFINE_UNARY_FUNCTION(gelu_tanh, GeluTanh)
#undef LST_DEFINE_UNARY_FUNCTION

LST_NAMESPACE_END
