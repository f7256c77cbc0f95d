// SPDX-License-Identifier: MIT
/// @file gemm.hpp
/// @brief General matrix multiply, C = alpha op(A) op(B) + beta C, dispatched on the operands' backend.
#pragma once

#include <type_traits>

#include "../core/matrix_ref.hpp"

LST_NAMESPACE_BEGIN

namespace ops {
/// A backend's GEMM: `static void run(ta, tb, alpha, a, b, beta, c)` over MatrixRefs of that backend.
/// Defined in backends/<name>/gemm.hpp.
template <class Backend>
struct GemmKernel;

template <class T>
struct type_identity {
  using type = T;
};
/// A parameter that takes part in no deduction: `gemm<float>(..., view, ...)` converts tensors and views to
/// MatrixRef of the backend given (Cpu by default), as a non-template function would.
template <class T>
using no_deduce = typename type_identity<T>::type;
}  // namespace ops

/// C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, every matrix row-major with its own leading
/// dimension. beta = 0 never reads C (so C may hold NaN garbage), as in BLAS. Shapes are checked
/// (ShapeError), and C must not overlap A or B.
template <class T, class Backend = Cpu>
void gemm(Trans ta, Trans tb, T alpha, const ops::no_deduce<MatrixRef<const T, Backend>>& a,
          const ops::no_deduce<MatrixRef<const T, Backend>>& b, T beta,
          const ops::no_deduce<MatrixRef<T, Backend>>& c) {
  ops::GemmKernel<Backend>::run(ta, tb, alpha, a, b, beta, c);
}

/// `batch` independent GEMMs whose matrices sit at fixed element strides from one another (attention heads).
template <class T, class Backend = Cpu>
void gemm_batched(Trans ta, Trans tb, T alpha, ops::no_deduce<MatrixRef<const T, Backend>> a,
                  index_t stride_a, ops::no_deduce<MatrixRef<const T, Backend>> b, index_t stride_b, T beta,
                  ops::no_deduce<MatrixRef<T, Backend>> c, index_t stride_c, index_t batch) {
  for (index_t i = 0; i < batch; ++i) {
    ops::GemmKernel<Backend>::run(ta, tb, alpha, a, b, beta, c);
    a.data += stride_a;
    b.data += stride_b;
    c.data += stride_c;
  }
}

LST_NAMESPACE_END

#include "../backends/cpu/gemm.hpp"
