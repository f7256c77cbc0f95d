// SPDX-License-Identifier: MIT
/// @file narrow_gemm.hpp
/// @brief A float GEMM without operand packing. Written for products whose weight side is narrow (the LST
///        side network's (tokens, 48) x (48, 48) at r = 8, its ladders' (tokens, 384) x (384, 48), and their
///        weight gradients); it also outruns Eigen on the backbone's wide products where measured (see
///        narrow_gemm_applies), which it therefore takes too.
///
/// Eigen's GEMM copies ("packs") both operands into panels before multiplying. For a (tokens, 48) operand
/// the copy costs a third of the product (perf of a cached LST epoch on MRPC: gemm_pack_lhs and
/// gemm_pack_rhs next to gebp_kernel), because each packed value is used for only 48 multiply-adds. Here the
/// wide operand is read in place: a tile of C, MR rows by NP packets, lives in registers; each step over k
/// loads NP packets of a row of op(B) and broadcasts MR values of op(A): the register-blocked inner kernel
/// of Goto and van de Geijn (2008), without its packing. op(B) must have contiguous rows, so C = A W^T first
/// transposes W (a few per cent of the product at the backbone's widths, where the operands are reused M
/// times).
///
/// Where k runs in one block (K <= narrow_gemm_k_block_threshold) each element is one sequential chain of
/// fused multiply-adds over k. A longer reduction (weight gradients sum over every token) runs in blocks of
/// narrow_gemm_k_block values, added into C block after block, so that the block of op(B) a tile reads stays
/// in L1. The split of C over threads never changes an element's chain: the result does not depend on the
/// thread count.
#pragma once

#include <algorithm>

#include "../../core/allocator.hpp"
#include "../../core/matrix_ref.hpp"
#include "../../core/row_table.hpp"
#include "row_math.hpp"
#include "threads.hpp"

LST_NAMESPACE_BEGIN
namespace cpu {

/// Reductions up to this long run in one block (forward products: K is a layer width).
inline constexpr index_t narrow_gemm_k_block_threshold = 512;
/// The block of a longer reduction: 256 rows of a 48-wide op(B) tile are 48 KiB.
inline constexpr index_t narrow_gemm_k_block = 256;

/// Whether gemm() takes the narrow kernel for C (M, N) = op(A) (M, K) op(B) (K, N) in float. Measured on
/// this project's shapes (bench/bench_core, "narrow GEMM" and "GEMM" tables, which time both kernels on the
/// same operands): on an AMD EPYC (Zen 4) with AVX-512 the packing-free kernel outran Eigen's GEMM by 25-35 %
/// on every product of the backbone too (2048 x 384 x 384 up to 2048 x 1536 x 384, forward, input and weight
/// gradients), so there it takes every product with enough rows. A forward product (op(A) the activations)
/// needs those rows to amortise transposing W. With AVX2's 16 registers (6 x 16 tiles) it won the forward
/// products and input gradients of every width there, but lost the weight gradients dY^T X wider than 384
/// (48-55 against Eigen's 70-72 GFLOP/s at 1536 x 384 and 384 x 1536), which stay with Eigen.
inline bool narrow_gemm_applies(Trans ta, index_t M, index_t N, index_t K) {
  if (N % packet_size<float> != 0 || M == 0 || N == 0) return false;
  if (ta == Trans::no) return M >= 256;
  return K >= 256 && (vector_registers >= 32 || std::max(M, N) <= 384);
}

/// A (rows, cols) float matrix whose rows lie anywhere (core/row_table.hpp): the ladders read a batch of
/// cached backbone states this way, in place in the tap cache, instead of gathering the examples' rows into
/// one block first.
using RowTable = lst::RowTable<float>;

/// out (rows, cols) = the rows row[0], row[1], ... (cols values each), one after the other.
template <class T>
void gather_rows(const T* const* row, index_t rows, index_t cols, T* out) {
  for (index_t i = 0; i < rows; ++i) std::copy_n(row[i], cols, out + i * cols);
}

namespace detail {
/// The operands of a tile, as offsets into the caller's matrices. op(A)(i, k) is `at(i, k)`; op(B) row k
/// starts at `row(k)`. `unit_k` says op(A) holds activations row by row (A itself, not dY^T).
// The two strided layouts are separate types so that the unit stride is known at compile time: with both
// strides at run time, each broadcast of op(A) cost an integer multiply, and the tile's row pointers no
// longer fitted in the general registers (perf annotate of a cached LST epoch on Zen 3).
struct RowsA {  // op(A) = A, activations row by row: op(A)(i, k) = p[i * ld + k]
  const float* p;
  index_t ld;
  float at(index_t i, index_t k) const { return p[i * ld + k]; }
  RowsA rows_from(index_t i) const { return {p + i * ld, ld}; }
  RowsA k_from(index_t k) const { return {p + k, ld}; }
  const float* line_of_row(index_t i, index_t k) const { return p + i * ld + k; }
  static constexpr bool unit_k() { return true; }
};
struct ColumnsA {  // op(A) = dY^T, a weight gradient's: op(A)(i, k) = p[k * ld + i]
  const float* p;
  index_t ld;
  float at(index_t i, index_t k) const { return p[k * ld + i]; }
  ColumnsA rows_from(index_t i) const { return {p + i, ld}; }
  ColumnsA k_from(index_t k) const { return {p + k * ld, ld}; }
  const float* line_of_row(index_t i, index_t k) const { return p + k * ld + i; }
  static constexpr bool unit_k() { return false; }
};
struct TableA {  // op(A)(i, k) = r[i][col0 + k]: activations whose rows lie anywhere
  const float* const* r;
  index_t col0;
  float at(index_t i, index_t k) const { return r[i][col0 + k]; }
  TableA rows_from(index_t i) const { return {r + i, col0}; }
  TableA k_from(index_t k) const { return {r, col0 + k}; }
  const float* line_of_row(index_t i, index_t k) const { return r[i] + col0 + k; }
  static constexpr bool unit_k() { return true; }
};
struct StridedB {  // op(B) row k at p + k * ld
  const float* p;
  index_t ld;
  const float* row(index_t k) const { return p + k * ld; }
  StridedB cols_from(index_t j) const { return {p + j, ld}; }
  StridedB k_from(index_t k) const { return {p + k * ld, ld}; }
};
struct TableB {  // op(B) row k at r[k] + col0: activations whose rows lie anywhere (a weight gradient's X)
  const float* const* r;
  index_t col0;
  const float* row(index_t k) const { return r[k] + col0; }
  TableB cols_from(index_t j) const { return {r, col0 + j}; }
  TableB k_from(index_t k) const { return {r + k, col0}; }
};

/// One step over k of a tile: acc[i][:] += op(A)(i, k) op(B)(k, :) for its MR rows.
template <int MR, int NP, class A, class B>
LST_ALWAYS_INLINE void narrow_step(Packet<float> (&acc)[MR][NP], index_t k, const A& a, const B& b) {
  namespace ei = Eigen::internal;
  using P = Packet<float>;
  constexpr index_t L = packet_size<float>;
  P bk[NP];
  const float* bk_row = b.row(k);
  for (int j = 0; j < NP; ++j) bk[j] = ei::ploadu<P>(bk_row + j * L);
  for (int i = 0; i < MR; ++i) {
    const P ai = ei::pset1<P>(a.at(i, k));
    for (int j = 0; j < NP; ++j) acc[i][j] = ei::pmadd(ai, bk[j], acc[i][j]);
  }
}

/// How far ahead (in k) a weight-gradient tile prefetches its rows of op(A) and op(B).
inline constexpr index_t narrow_prefetch_distance = 16;

/// C tile (MR, NP packets) = alpha * sum over k < K of op(A)(i, k) op(B)(k, :) + beta * C (+ the tile's NP
/// packets of a bias row, when not null). beta = 0 does not read C.
///
/// With `prefetch`, the tile prefetches while it computes: in the side network the operands come out of
/// L2 and beyond (the previous pass wrote them), not out of L1 ("cold" in bench_core's narrow GEMM table).
/// With op(A) = activations (unit_k) it prefetches the next tile's MR rows, a cache line per row every 16
/// steps over k; with op(A) = dY^T (a weight gradient) every tile walks down the same rows of dY and X, and
/// it prefetches them `narrow_prefetch_distance` steps ahead. The arithmetic (one chain of fused
/// multiply-adds per element, in k order) is the same either way, and the same wherever the rows lie.
template <int MR, int NP, class A, class B>
void narrow_tile(index_t K, float alpha, const A& a, const B& b, float beta, const float* bias, float* c,
                 index_t ldc, bool prefetch) {
  namespace ei = Eigen::internal;
  using P = Packet<float>;
  constexpr index_t L = packet_size<float>;
  constexpr index_t line = 64 / sizeof(float);  // floats per cache line
  P acc[MR][NP];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NP; ++j) acc[i][j] = ei::pset1<P>(0.0f);
  index_t k = 0;
  if (prefetch && A::unit_k()) {  // line l of the next tile: its row l % MR, from float line * (l / MR)
    // The next tile's MR ceil(K / line) lines over the K / 2 pairs of steps: one line per pair for 6- and
    // 8-row tiles (exactly enough for 8 rows where K is a whole number of lines), two for 12-row ones and
    // three for 24-row ones.
    constexpr int per_pair = (MR + 7) / 8;
    const A next = a.rows_from(MR);
    const index_t lines = MR * ((K + line - 1) / line);
    for (index_t l = 0; k + 2 <= K; k += 2) {
      for (int i = 0; i < per_pair && l < lines; ++i, ++l)
        LST_PREFETCH(next.line_of_row(l % MR, (l / MR) * line));
      narrow_step<MR, NP>(acc, k, a, b);
      narrow_step<MR, NP>(acc, k + 1, a, b);
    }
  } else if (prefetch) {
    for (; k + narrow_prefetch_distance < K; ++k) {
      LST_PREFETCH(a.line_of_row(0, k + narrow_prefetch_distance));
      const float* ahead = b.row(k + narrow_prefetch_distance);
      for (int j = 0; j < NP; ++j) LST_PREFETCH(ahead + j * L);
      narrow_step<MR, NP>(acc, k, a, b);
    }
  }
  for (; k < K; ++k) narrow_step<MR, NP>(acc, k, a, b);
  const P pa = ei::pset1<P>(alpha), pb = ei::pset1<P>(beta);
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NP; ++j) {
      float* ci = c + i * ldc + j * L;
      P r = ei::pmul(pa, acc[i][j]);
      if (beta != 0.0f) r = ei::pmadd(pb, ei::ploadu<P>(ci), r);
      if (bias) r = ei::padd(ei::ploadu<P>(bias + j * L), r);  // what C preset to the bias, beta 1 gives
      ei::pstoreu(ci, r);
    }
}

/// The packets of C's widest column stripe: 3 (48 floats) in 32 registers, 2 (16 floats) in 16.
inline constexpr int narrow_stripe_packets = vector_registers >= 32 ? 3 : 2;

/// The rows of a tile of NP packets: its MR NP accumulators, NP packets of op(B) and one broadcast of op(A)
/// within the vector registers (8 x 3 and 24 x 1 in AVX-512's 32; 6 x 2 and 12 x 1 in AVX2's 16, the 6 x 16
/// kernel of BLIS and OpenBLAS on Haswell).
template <int NP>
inline constexpr int narrow_tile_rows = vector_registers >= 32 ? (NP == 1 ? 24 : 8) : (NP == 1 ? 12 : 6);

/// Rows [0, M) of C against one column stripe of NP packets: tiles of narrow_tile_rows<NP> rows, then single
/// rows.
template <int NP, class A, class B>
void narrow_stripe(index_t M, index_t K, float alpha, const A& a, const B& b, float beta, const float* bias,
                   float* c, index_t ldc) {
  constexpr int MR = narrow_tile_rows<NP>;
  index_t i = 0;
  for (; i + MR <= M; i += MR) {
    const bool next_tile = !A::unit_k() || i + 2 * MR <= M;  // activations: while a whole tile follows
    narrow_tile<MR, NP>(K, alpha, a.rows_from(i), b, beta, bias, c + i * ldc, ldc, next_tile);
  }
  for (; i < M; ++i) narrow_tile<1, NP>(K, alpha, a.rows_from(i), b, beta, bias, c + i * ldc, ldc, false);
}

/// The bytes of op(A) that one panel of rows spans, where op(A) holds activations: every column stripe of C
/// runs over the panel's rows before the next panel starts, so the panel is read from memory once and from
/// the cache by the other stripes. (With the stripes outermost, the FFN up-projection's 12 stripes each
/// re-read all 4096 rows of its input, 768 KiB, beyond L2.) An L1's worth; 16 and 64 KiB timed alike.
inline constexpr index_t narrow_gemm_panel_bytes = 32 * 1024;

/// C (M, N) in panels of rows (activations) and blocks over k; one thread's rectangle of C. The bias goes in
/// with the first block, as into a C preset to it.
template <class A, class B>
void narrow_gemm_serial(index_t M, index_t N, index_t K, float alpha, const A& a, const B& b, float beta,
                        const float* bias, float* c, index_t ldc) {
  constexpr index_t L = packet_size<float>;
  constexpr int NP = narrow_stripe_packets;
  const index_t block = K <= narrow_gemm_k_block_threshold ? std::max<index_t>(K, 1) : narrow_gemm_k_block;
  constexpr index_t MR = narrow_tile_rows<NP>;
  const index_t panel =
      A::unit_k() ? std::max<index_t>(MR, narrow_gemm_panel_bytes / index_t(sizeof(float) * block) / MR * MR)
                  : M;
  for (index_t i0 = 0; i0 == 0 || i0 < M; i0 += panel) {
    const index_t mi = std::min(panel, M - i0);
    for (index_t k0 = 0; k0 == 0 || k0 < K; k0 += block) {
      const index_t kn = std::min(block, K - k0);
      const float beta_k = k0 == 0 ? beta : 1.0f;  // later blocks add into C
      const A ak = a.rows_from(i0).k_from(k0);
      const B bk = b.k_from(k0);
      float* ck = c + i0 * ldc;
      const float* bias_k = k0 == 0 ? bias : nullptr;
      const auto bias_at = [bias_k](index_t j) { return bias_k ? bias_k + j : nullptr; };
      index_t j = 0;
      for (; j + NP * L <= N; j += NP * L)
        narrow_stripe<NP>(mi, kn, alpha, ak, bk.cols_from(j), beta_k, bias_at(j), ck + j, ldc);
      for (; j < N; j += L)
        narrow_stripe<1>(mi, kn, alpha, ak, bk.cols_from(j), beta_k, bias_at(j), ck + j, ldc);
    }
  }
}

/// C (M, N) = alpha op(A) op(B) + beta C (+ bias) over the threads, by row blocks of 8 or by column stripes.
/// A forward product splits its rows (its columns where it has fewer than 8 rows a thread). A weight gradient
/// dY^T X reads, on each thread, its share of dY's M columns and of X's N columns over all K tokens, so it
/// splits the wider of the two: a ladder's (48, 384) gradient by X's columns, so that each thread reads half
/// of the cached backbone states instead of all of them. Neither split changes an element's chain of
/// multiply-adds.
template <class A, class B>
void narrow_gemm_parallel(index_t M, index_t N, index_t K, float alpha, const A& a, const B& b, float beta,
                          const float* bias, const MatrixRef<float, Cpu>& c) {
  constexpr index_t L = packet_size<float>;
  // Small products stay on one thread (a parallel region costs more than they do).
  const index_t parts = M * N * K >= 64 * parallel_min_elements ? std::max(1, threads()) : 1;
  const index_t stripes = N / L;
  const bool by_columns = stripes >= parts && (A::unit_k() ? M < 8 * parts : N > M);
  LST_PARALLEL_FOR_IF(parts > 1)
  for (index_t p = 0; p < parts; ++p) {
    if (by_columns) {
      const index_t s0 = stripes * p / parts, s1 = stripes * (p + 1) / parts;
      narrow_gemm_serial(M, (s1 - s0) * L, K, alpha, a, b.cols_from(s0 * L), beta,
                         bias ? bias + s0 * L : nullptr, c.data + s0 * L, c.ld);
    } else {
      const index_t blocks = (M + 7) / 8, r0 = std::min(M, blocks * p / parts * 8),
                    r1 = std::min(M, blocks * (p + 1) / parts * 8);
      narrow_gemm_serial(r1 - r0, N, K, alpha, a.rows_from(r0), b, beta, bias, c.data + r0 * c.ld, c.ld);
    }
  }
}

/// W (N, K) transposed into tracked workspace: op(B) = W^T with contiguous rows. In blocks of 16 x 16 (a
/// row of W read and a row of W^T written a cache line at a time), over the threads when W is large (a
/// backbone's FFN weight is 2.25 MiB; transposing it on one thread cost a sixth of the product on two).
inline lst::detail::Buffer<float, Cpu> transposed_weight(const MatrixRef<const float, Cpu>& w) {
  const index_t N = w.rows, K = w.cols;
  constexpr index_t tile = 16;
  lst::detail::Buffer<float, Cpu> t(std::size_t(K * N), MemCategory::workspace);
  float* out = t.data();
  const index_t row_tiles = (N + tile - 1) / tile;
  LST_PARALLEL_FOR_IF(N * K >= 4 * parallel_min_elements)
  for (index_t nt = 0; nt < row_tiles; ++nt) {
    const index_t n0 = nt * tile, n1 = std::min(N, n0 + tile);
    for (index_t k0 = 0; k0 < K; k0 += tile) {
      const index_t k1 = std::min(K, k0 + tile);
      for (index_t k = k0; k < k1; ++k)
        for (index_t n = n0; n < n1; ++n) out[k * N + n] = w.data[n * w.ld + k];
    }
  }
  return t;
}
}  // namespace detail

/// C = alpha * op(A) op(B) + beta * C, plus `bias` (N) on every row when it is not null (a linear layer's
/// forward, without a pass of its own to broadcast the bias), for narrow_gemm_applies() shapes (row-major,
/// any leading dimensions). op(B) = W^T is transposed once into tracked workspace. C is split over threads
/// by row blocks, or by column stripes where it has few rows.
inline void narrow_gemm(Trans ta, Trans tb, float alpha, const MatrixRef<const float, Cpu>& a,
                        const MatrixRef<const float, Cpu>& b, float beta, const MatrixRef<float, Cpu>& c,
                        const float* bias = nullptr) {
  constexpr index_t L = packet_size<float>;
  const index_t M = c.rows, N = c.cols, K = ta == Trans::no ? a.cols : a.rows;
  lst::detail::check_gemm_shapes(ta, tb, a, b, c);
  LST_CHECK_SHAPE(N % L == 0, "narrow_gemm: C has ", N, " columns, not a whole number of ", L,
                  "-float packets");
  const auto run = [&](const auto& op_a) {
    if (tb == Trans::no) {
      detail::narrow_gemm_parallel(M, N, K, alpha, op_a, detail::StridedB{b.data, b.ld}, beta, bias, c);
      return;
    }
    const auto transposed = detail::transposed_weight(b);  // b is (N, K): op(B) (K, N) row k = column k of b
    detail::narrow_gemm_parallel(M, N, K, alpha, op_a, detail::StridedB{transposed.data(), N}, beta, bias, c);
  };
  if (ta == Trans::no)
    run(detail::RowsA{a.data, a.ld});
  else
    run(detail::ColumnsA{a.data, a.ld});
}

/// C (M, N) = X W^T (+ bias on every row) for X's M rows in a table and W (N, K): narrow_gemm(Trans::no,
/// Trans::yes, 1, X, W, 0, C, bias) with X read in place, bit for bit. For narrow_gemm_applies(Trans::no, M,
/// N, K) shapes.
inline void narrow_gemm_rows(const RowTable& x, const MatrixRef<const float, Cpu>& w,
                             const MatrixRef<float, Cpu>& c, const float* bias = nullptr) {
  const index_t M = c.rows, N = c.cols, K = x.cols;
  LST_CHECK_SHAPE(x.rows == M && w.rows == N && w.cols == K && narrow_gemm_applies(Trans::no, M, N, K),
                  "narrow_gemm_rows: X (", x.rows, ", ", x.cols, ") W^T with W (", w.rows, ", ", w.cols,
                  ") into C (", M, ", ", N, ") is not a narrow product");
  const auto transposed = detail::transposed_weight(w);
  detail::narrow_gemm_parallel(M, N, K, 1.0f, detail::TableA{x.row, 0},
                               detail::StridedB{transposed.data(), N}, 0.0f, bias, c);
}

/// C (M, N) = dY^T X + beta C for dY (K, M) and X's K rows in a table (a weight gradient):
/// narrow_gemm(Trans::yes, Trans::no, 1, dY, X, beta, C) with X read in place, bit for bit. For
/// narrow_gemm_applies(Trans::yes, M, N, K) shapes.
inline void narrow_gemm_rows_weight_gradient(const MatrixRef<const float, Cpu>& dy, const RowTable& x,
                                             float beta, const MatrixRef<float, Cpu>& c) {
  const index_t M = c.rows, N = c.cols, K = x.rows;
  LST_CHECK_SHAPE(dy.rows == K && dy.cols == M && x.cols == N && narrow_gemm_applies(Trans::yes, M, N, K),
                  "narrow_gemm_rows_weight_gradient: dY (", dy.rows, ", ", dy.cols, ")^T X (", x.rows, ", ",
                  x.cols, ") into C (", M, ", ", N, ") is not a narrow product");
  detail::narrow_gemm_parallel(M, N, K, 1.0f, detail::ColumnsA{dy.data, dy.ld}, detail::TableB{x.row, 0},
                               beta, nullptr, c);
}

}  // namespace cpu
LST_NAMESPACE_END
