// SPDX-License-Identifier: MIT
/// @file gemm.hpp
/// @brief General matrix multiply on host memory through Eigen Maps: C = alpha * op(A) op(B) + beta * C.
#pragma once

#include <type_traits>

#include <Eigen/Core>
#if defined(LST_USE_CBLAS)
#include <cblas.h>
#endif

#include "../../core/matrix_ref.hpp"
#include "../../ops/gemm.hpp"
#include "narrow_gemm.hpp"

LST_NAMESPACE_BEGIN

namespace detail {
template <class T>
using EigenRowMajor = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using ConstEigenMap = Eigen::Map<const EigenRowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class T>
using EigenMap = Eigen::Map<EigenRowMajor<T>, Eigen::Unaligned, Eigen::OuterStride<>>;
}  // namespace detail

/// C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C, every matrix row-major with its own leading
/// dimension. beta = 0 never reads C (so C may hold NaN garbage), as in BLAS. Float products that
/// cpu::narrow_gemm_applies() gives it (narrow_gemm.hpp: enough rows, and on AVX2 no wide weight gradient)
/// take the packing-free kernel, everything else Eigen's GEMM — or, where the
/// including project defines LST_USE_CBLAS and links a CBLAS (CMake: -DLST_CBLAS=ON for lst's own programs,
/// OpenBLAS's OpenMP build), cblas_sgemm / cblas_dgemm: OpenBLAS's AVX2 kernels outrun Eigen's on AMD's Zen
/// (README, "Bench"). Its OpenMP build shares lst's thread pool, and runs on one thread inside lst's parallel
/// loops.
namespace cpu {
template <class T>
void gemm(Trans ta, Trans tb, T alpha, const MatrixRef<const T, Cpu>& a, const MatrixRef<const T, Cpu>& b,
          T beta, const MatrixRef<T, Cpu>& c) {
  if constexpr (std::is_same_v<T, float>) {
    if (narrow_gemm_applies(ta, c.rows, c.cols, ta == Trans::no ? a.cols : a.rows)) {
      narrow_gemm(ta, tb, alpha, a, b, beta, c);  // which checks the shapes as below
      return;
    }
  }
  lst::detail::check_gemm_shapes(ta, tb, a, b, c);
  const lst::detail::ConstEigenMap<T> ma(a.data, a.rows, a.cols, Eigen::OuterStride<>(a.ld));
  const lst::detail::ConstEigenMap<T> mb(b.data, b.rows, b.cols, Eigen::OuterStride<>(b.ld));
  lst::detail::EigenMap<T> mc(c.data, c.rows, c.cols, Eigen::OuterStride<>(c.ld));
  if (c.rows == 0 || c.cols == 0) return;
#if defined(LST_USE_CBLAS)
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    const index_t K = ta == Trans::no ? a.cols : a.rows;
    if (K > 0) {  // (K = 0 below: BLAS asks leading dimensions >= 1 of the empty operands)
      const auto op = [](Trans t) { return t == Trans::no ? CblasNoTrans : CblasTrans; };
      const auto i = [](index_t v) { return static_cast<int>(v); };
      if constexpr (std::is_same_v<T, float>)
        cblas_sgemm(CblasRowMajor, op(ta), op(tb), i(c.rows), i(c.cols), i(K), alpha, a.data, i(a.ld), b.data,
                    i(b.ld), beta, c.data, i(c.ld));
      else
        cblas_dgemm(CblasRowMajor, op(ta), op(tb), i(c.rows), i(c.cols), i(K), alpha, a.data, i(a.ld), b.data,
                    i(b.ld), beta, c.data, i(c.ld));
      return;
    }
  }
#endif
  // Eigen folds alpha and the transposes into its GEMM kernel call; noalias() promises C does not overlap
  // A/B, which saves the temporary Eigen would otherwise evaluate the product into. One accumulating product
  // per transpose combination (not also an assigning one) halves the Eigen GEMM instantiations, which
  // dominate compile time; zeroing C first costs M*N next to the product's M*N*K.
  if (beta == T(0))
    mc.setZero();
  else if (beta != T(1))
    mc *= beta;
  auto run = [&](const auto& op_a, const auto& op_b) { mc.noalias() += alpha * op_a * op_b; };
  if (ta == Trans::no && tb == Trans::no)
    run(ma, mb);
  else if (ta == Trans::no)
    run(ma, mb.transpose());
  else if (tb == Trans::no)
    run(ma.transpose(), mb);
  else
    run(ma.transpose(), mb.transpose());
}

}  // namespace cpu

namespace ops {
template <>
struct GemmKernel<Cpu> {
  template <class T>
  static void run(Trans ta, Trans tb, T alpha, const MatrixRef<const T, Cpu>& a,
                  const MatrixRef<const T, Cpu>& b, T beta, const MatrixRef<T, Cpu>& c) {
    cpu::gemm(ta, tb, alpha, a, b, beta, c);
  }
};
}  // namespace ops

LST_NAMESPACE_END

// Compile-time saver for projects with many translation units: with LST_EXTERN_TEMPLATES defined, every TU
// skips instantiating Eigen's GEMM, and exactly one TU of the project includes
// <lst/backends/cpu/gemm_instances.hpp> to instantiate it. Eigen's GEMM is most of a TU's build time.
#if defined(LST_EXTERN_TEMPLATES) && !defined(LST_INSTANTIATING_TEMPLATES)
LST_NAMESPACE_BEGIN
namespace cpu {
extern template void gemm<float>(Trans, Trans, float, const MatrixRef<const float, Cpu>&,
                                 const MatrixRef<const float, Cpu>&, float, const MatrixRef<float, Cpu>&);
extern template void gemm<double>(Trans, Trans, double, const MatrixRef<const double, Cpu>&,
                                  const MatrixRef<const double, Cpu>&, double, const MatrixRef<double, Cpu>&);
}  // namespace cpu
LST_NAMESPACE_END
#endif
