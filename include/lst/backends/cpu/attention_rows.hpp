// SPDX-License-Identifier: MIT
/// @file attention_rows.hpp
/// @brief Attention for narrow heads by query rows, a few rows per call: the forward in two fused passes over
///        the keys, backward in one (the LST side network's heads are 64 / r wide: 4 at r = 8).
///
/// A head's keys and values are laid out as K^T and V^T, (D, Tp) with Tp = Tk rounded up to whole SIMD
/// packets and zeros past Tk, beside a key bias (Tp): 0 for a visible key, -inf for a hidden one and for the
/// padding. Every loop then runs over whole packets (no scalar tail, no second code path), and lane k of a
/// packet always holds the keys j = k (mod L), so the arithmetic of a row does not depend on where it lies in
/// memory.
///
/// The forward returns the row's softmax statistics (its max and 1 / sum). Backward takes them back and
/// recomputes each probability with one exp, bit for bit the forward's (the same scores, exp and product):
/// no max or sum pass of its own, and the (Tq, Tk) probabilities are never stored (as FlashAttention keeps
/// only its log-sum-exp; Dao et al. 2022, 3.1). With each row's go . o from the caller, backward is one pass
/// over the keys (Dao 2023, 3.1.2). The head width D is a template parameter so that the D
/// accumulators of a row stay in registers.
///
/// Attention dropout multiplies each probability by its keep-scale m_j (1 / (1 - p) where kept, else 0),
/// drawn by the caller into a row of Tp values (attention_dropout_scales): forward accumulates o += (e_j m_j)
/// v_j over the undropped exps' sum, and backward, with delta = go . o of the dropped output (still sum_j p_j
/// m_j dP_j), takes dS_j = scale p_j (m_j dP_j - delta) and dV_j += go p_j m_j.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "../../core/random.hpp"
#include "row_math.hpp"
#include "splitmix_lanes.hpp"

LST_NAMESPACE_BEGIN
namespace cpu {

/// The widest head the row kernels take; a wider head has enough work per key for a GEMM.
inline constexpr index_t attention_row_max_head_dim = 16;

/// Tk rounded up to whole packets: the length of every key row in the row kernels' layout.
template <class T>
index_t padded_keys(index_t Tk) {
  return (Tk + packet_size<T> - 1) / packet_size<T> * packet_size<T>;
}

/// A row's softmax statistics: probability j = exp(s_j - max) * inv_sum. A row whose keys are all hidden has
/// max 0 and inv_sum 0 (all its probabilities are 0).
template <class T>
struct SoftmaxRowStats {
  T max;
  T inv_sum;
};

namespace detail {
/// The D packets of K^T (or V^T) at key j: loaded once per call and shared by its rows.
template <class T, int D>
void load_key_packets(const T* kt, index_t Tp, index_t j, Packet<T> (&k)[D]) {
  for (int d = 0; d < D; ++d) k[d] = Eigen::internal::ploadu<Packet<T>>(kt + d * Tp + j);
}

/// A packet of scores = bias + sum_d scaled_q[d] K^T[d] (k: the key packets at these keys): the bias first,
/// then one fused multiply-add per d in order. Forward and backward's recomputation both call it, so they
/// compute the same bits.
template <class T, int D>
Packet<T> attention_scores(const T* scaled_q, const Packet<T> (&k)[D], Packet<T> bias) {
  namespace ei = Eigen::internal;
  Packet<T> s = bias;
  for (int d = 0; d < D; ++d) s = ei::pmadd(ei::pset1<Packet<T>>(scaled_q[d]), k[d], s);
  return s;
}

}  // namespace detail

/// The least 24-bit draw that keeps an element at dropout probability p: uniform_in_stream(key, i) >= p iff
/// mix64(key + i golden) >> 40 >= ceil(p 2^24) (the float is those 24 bits times 2^-24, exactly).
inline std::uint64_t dropout_keep_from(double p) {
  return static_cast<std::uint64_t>(std::ceil(p * 16777216.0));
}

/// m[j] = scale where element first + j of the stream `key` is kept (its 24-bit draw >= keep_from:
/// uniform_in_stream(key, first + j) >= p), else 0, for j < n: attention dropout's keep-scales of one row.
/// Eight draws at a time in 64-bit lanes with AVX-512 (DQ) or four with AVX2, the scalar definition's bits;
/// each lane's SplitMix64 state key + (index + 1) golden grows by a constant a step, so the index multiply
/// is an addition.
template <class T>
void attention_dropout_scales(std::uint64_t key, std::uint64_t first, std::uint64_t keep_from, T scale,
                              index_t n, T* m) {
  constexpr std::uint64_t golden = 0x9e3779b97f4a7c15ull;
  index_t j = 0;
#if defined(__AVX512F__) && defined(__AVX512DQ__)
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    const auto state = [&](std::uint64_t l) {
      return static_cast<long long>(key + (first + l + 1) * golden);
    };
    const __m512i from = _mm512_set1_epi64(static_cast<long long>(keep_from));
    const __m512i stride = _mm512_set1_epi64(static_cast<long long>(8 * golden));
    __m512i z =
        _mm512_set_epi64(state(7), state(6), state(5), state(4), state(3), state(2), state(1), state(0));
    const auto kept8 = [&]() {  // the next eight draws' keep bits
      const __m512i h = splitmix_draws24(z);
      z = _mm512_add_epi64(z, stride);
      return _mm512_cmpge_epu64_mask(h, from);
    };
    if constexpr (std::is_same_v<T, float>) {
      const __m512 s = _mm512_set1_ps(scale);
      for (; j < n - n % 16; j += 16) {
        const unsigned lo = kept8(), hi = kept8();
        _mm512_storeu_ps(m + j, _mm512_maskz_mov_ps(static_cast<__mmask16>(lo | (hi << 8)), s));
      }
    } else {
      const __m512d s = _mm512_set1_pd(scale);
      for (; j < n - n % 8; j += 8) _mm512_storeu_pd(m + j, _mm512_maskz_mov_pd(kept8(), s));
    }
  }
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    const auto state = [&](std::uint64_t l) {
      return static_cast<long long>(key + (first + l + 1) * golden);
    };
    // The draws are below 2^24, so the signed compare with keep_from - 1 is exact.
    const __m256i above = _mm256_set1_epi64x(static_cast<long long>(keep_from) - 1);
    const __m256i stride = _mm256_set1_epi64x(static_cast<long long>(4 * golden));
    __m256i z = _mm256_set_epi64x(state(3), state(2), state(1), state(0));
    const auto kept4 = [&]() {  // the next four draws' keep masks, all ones or zeros in 64-bit lanes
      const __m256i h = splitmix_draws24(z);
      z = _mm256_add_epi64(z, stride);
      return _mm256_cmpgt_epi64(h, above);
    };
    if constexpr (std::is_same_v<T, float>) {
      const __m256 s = _mm256_set1_ps(scale);
      const __m256i even_dwords = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
      for (; j < n - n % 8; j += 8) {
        const __m256i lo = _mm256_permutevar8x32_epi32(kept4(), even_dwords);
        const __m256i hi = _mm256_permutevar8x32_epi32(kept4(), even_dwords);
        const __m256 keep = _mm256_castsi256_ps(_mm256_permute2x128_si256(lo, hi, 0x20));
        _mm256_storeu_ps(m + j, _mm256_and_ps(keep, s));
      }
    } else {
      const __m256d s = _mm256_set1_pd(scale);
      for (; j < n - n % 4; j += 4) _mm256_storeu_pd(m + j, _mm256_and_pd(_mm256_castsi256_pd(kept4()), s));
    }
  }
#endif
  for (; j < n; ++j)
    m[j] = (mix64(key + (first + std::uint64_t(j)) * golden) >> 40) >= keep_from ? scale : T(0);
}

/// Query rows per call of the row kernels for heads of width D: enough that each K^T, V^T, dK^T and dV^T
/// packet is loaded (and, in backward, stored) once for several rows; few enough that the forward's R D
/// accumulators mostly stay in registers (the one-pass backward holds more: its R D query-gradient
/// accumulators beside the D packets of K^T, dK^T and dV^T, and spills some). 4 rows up to D = 8 in
/// AVX-512's 32 registers. In AVX2's 16, 4 rows at D = 4 and 2 at D = 8 (bench_core's side attention
/// table, whose last column times 4 rows against 2 in alternation: on Zen 3, 0.90x the time backward and the
/// same forward at D = 4, the side heads at r = 8; 1.07x and 1.19x at D = 8, where the spills outweigh the
/// shared loads). One row for wider heads.
template <int D>
inline constexpr int attention_rows_per_call = D <= 8 ? (vector_registers >= 32 || D <= 4 ? 4 : 2) : 1;

/// The most rows one call takes (the callers' scratch holds this many rows).
inline constexpr int attention_max_rows_per_call = 4;

/// Forward of R consecutive query rows of a head of width D: o (D) = softmax(scale q K^T + bias) V per row.
/// Row r's q and o sit at q + r ld and o + r ld; kt, vt, bias in the layout above; `e` (R rows of Tp) is
/// scratch, and with KeepExps holds each row's exp(s - max) afterwards (0 past Tk), for a caller that keeps
/// the probabilities (without, pass 2 does not store them back); `stats` (R) gets each row's statistics. Pass
/// 1 scores the keys and takes their max; pass 2 takes the exps, their sum and the D weighted sums of V at
/// once, and normalises the D outputs instead of the Tk probabilities. Every row's arithmetic is that of R
/// = 1. With Dropout, `keep` (R rows of Tp) holds the rows' keep-scales: the exps enter the outputs times
/// them, and the sums (so the statistics and the kept exps) are the undropped ones.
template <class T, int D, int R, bool KeepExps = true, bool Dropout = false>
void attention_rows_forward(const T* q, T* o, index_t ld, T scale, const T* kt, const T* vt, const T* bias,
                            index_t Tp, T* e, SoftmaxRowStats<T>* stats, const T* keep = nullptr) {
  namespace ei = Eigen::internal;
  using P = Packet<T>;
  constexpr index_t L = packet_size<T>;
  constexpr T hidden = -std::numeric_limits<T>::infinity();
  T scaled_q[R][D];
  P lane_max[R];  // max is exact in any order; lanes only break the dependency chain
  for (int r = 0; r < R; ++r) {
    for (int d = 0; d < D; ++d) scaled_q[r][d] = scale * q[r * ld + d];
    lane_max[r] = ei::pset1<P>(hidden);
  }
  for (index_t j = 0; j < Tp; j += L) {
    P k[D];
    detail::load_key_packets<T, D>(kt, Tp, j, k);
    const P b = ei::ploadu<P>(bias + j);
    for (int r = 0; r < R; ++r) {
      const P s = detail::attention_scores<T, D>(scaled_q[r], k, b);
      ei::pstoreu(e + r * Tp + j, s);
      lane_max[r] = ei::pmax(lane_max[r], s);
    }
  }
  // A row whose keys are all hidden attends to nothing: its exps are all masked to 0 (whatever the max), its
  // sum is 0, and it gets max 0, 1 / sum 0 and o = 0.
  T mx[R];
  P pmx[R], sum[R], acc[R][D];
  for (int r = 0; r < R; ++r) {
    mx[r] = ei::predux_max(lane_max[r]);
    if (mx[r] == hidden) mx[r] = T(0);
    pmx[r] = ei::pset1<P>(mx[r]);
    sum[r] = ei::pset1<P>(T(0));
    for (int d = 0; d < D; ++d) acc[r][d] = ei::pset1<P>(T(0));
  }
  for (index_t j = 0; j < Tp; j += L) {
    P v[D];
    detail::load_key_packets<T, D>(vt, Tp, j, v);
    for (int r = 0; r < R; ++r) {
      const P x = masked_exp<T>(ei::ploadu<P>(e + r * Tp + j), pmx[r]);
      if constexpr (KeepExps) ei::pstoreu(e + r * Tp + j, x);
      sum[r] = ei::padd(sum[r], x);
      if constexpr (Dropout) {
        const P xm = ei::pmul(x, ei::ploadu<P>(keep + r * Tp + j));
        for (int d = 0; d < D; ++d) acc[r][d] = ei::pmadd(xm, v[d], acc[r][d]);
      } else {
        for (int d = 0; d < D; ++d) acc[r][d] = ei::pmadd(x, v[d], acc[r][d]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const T total = ei::predux(sum[r]);
    const T inv = total == T(0) ? T(0) : T(1) / total;
    for (int d = 0; d < D; ++d) o[r * ld + d] = ei::predux(acc[r][d]) * inv;
    stats[r] = {mx[r], inv};
  }
}

/// A row's delta = go . o (D values each): sum_j p_j dP_j of the softmax backward, which
/// attention_rows_backward takes from its caller. Explicit FMAs in a fixed order, so that a row's delta is
/// the same whether the row is computed alone or in a block (no compiler vectorises it its own way).
template <class T, int D>
T attention_row_delta(const T* go, const T* o) {
  T delta = go[0] * o[0];
  for (int d = 1; d < D; ++d) delta = std::fma(go[d], o[d], delta);
  return delta;
}

/// Backward of R consecutive query rows in one pass over the keys (FlashAttention-2's form; Dao 2023,
/// section 3.1.2): with delta = go . o per row (o the row's forward output), sum_j p_j dP_j = delta, so dS =
/// scale p (dP - delta) is known key by key and nothing is stored for a second pass. Row r's q, go and gq (D
/// each) sit at q + r ld, go + r ld and gq + r ld; `delta` (R) holds the rows' go . o. dK^T, dV^T (D, Tp)
/// accumulate the rows' shares, in row order; gq = dL/dq. With Recompute, each probability is recomputed
/// from the scores (bit for bit the forward's); without, `p` (R rows of Tp, zero past Tk) holds the rows'
/// kept probabilities. Each dK^T and dV^T packet is loaded and stored once per R rows; the arithmetic of
/// every row, and the order in which rows add into dK^T and dV^T, is that of R = 1. With Dropout, `keep` (R
/// rows of Tp) holds the forward's keep-scales m and o was the dropped output: dS = scale p (m dP - delta),
/// dV += go p m (p the undropped probabilities, kept or recomputed).
template <class T, int D, int R, bool Recompute, bool Dropout = false>
void attention_rows_backward(const T* q, const T* go, T* gq, index_t ld, T scale, const T* kt, const T* vt,
                             const T* bias, index_t Tp, const SoftmaxRowStats<T>* stats, const T* delta,
                             const T* p, T* dkt, T* dvt, const T* keep = nullptr) {
  namespace ei = Eigen::internal;
  using P = Packet<T>;
  constexpr index_t L = packet_size<T>;
  T scaled_q[R][D];
  P pmx[R], pinv[R], pdelta[R], acc[R][D];
  for (int r = 0; r < R; ++r) {
    for (int d = 0; d < D; ++d) {
      scaled_q[r][d] = scale * q[r * ld + d];
      acc[r][d] = ei::pset1<P>(T(0));
    }
    pmx[r] = ei::pset1<P>(stats[r].max);
    pinv[r] = ei::pset1<P>(stats[r].inv_sum);
    pdelta[r] = ei::pset1<P>(delta[r]);
  }
  const P pscale = ei::pset1<P>(scale);
  for (index_t j = 0; j < Tp; j += L) {
    P k[D], dk[D], dv[D];
    detail::load_key_packets<T, D>(kt, Tp, j, k);
    detail::load_key_packets<T, D>(dkt, Tp, j, dk);
    detail::load_key_packets<T, D>(dvt, Tp, j, dv);
    for (int r = 0; r < R; ++r) {
      const T* g = go + r * ld;
      P pj;
      if constexpr (Recompute)
        pj = ei::pmul(
            masked_exp<T>(detail::attention_scores<T, D>(scaled_q[r], k, ei::ploadu<P>(bias + j)), pmx[r]),
            pinv[r]);
      else
        pj = ei::ploadu<P>(p + r * Tp + j);
      P dpj = ei::pmul(ei::pset1<P>(g[0]), ei::ploadu<P>(vt + j));
      for (int d = 1; d < D; ++d) dpj = ei::pmadd(ei::pset1<P>(g[d]), ei::ploadu<P>(vt + d * Tp + j), dpj);
      P pv = pj;  // the probability that multiplied V: p, or with dropout p m
      if constexpr (Dropout) {
        const P mj = ei::ploadu<P>(keep + r * Tp + j);
        dpj = ei::pmul(mj, dpj);  // the gradient of the undropped probability
        pv = ei::pmul(pj, mj);
      }
      const P ds = ei::pmul(ei::pmul(pscale, pj), ei::psub(dpj, pdelta[r]));
      for (int d = 0; d < D; ++d) {
        dv[d] = ei::pmadd(ei::pset1<P>(g[d]), pv, dv[d]);
        acc[r][d] = ei::pmadd(ds, k[d], acc[r][d]);
        dk[d] = ei::pmadd(ei::pset1<P>(q[r * ld + d]), ds, dk[d]);
      }
    }
    for (int d = 0; d < D; ++d) {
      ei::pstoreu(dkt + d * Tp + j, dk[d]);
      ei::pstoreu(dvt + d * Tp + j, dv[d]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int d = 0; d < D; ++d) gq[r * ld + d] = ei::predux(acc[r][d]);
}

/// Calls f(i, std::integral_constant<int, R>{}) for i = 0, R, 2R, ... while R rows remain, then
/// f(i, std::integral_constant<int, 1>{}) for each row left: the row kernels' calls over n rows.
template <int R, class F>
void for_row_blocks(index_t n, F&& f) {
  index_t i = 0;
  for (; i + R <= n; i += R) f(i, std::integral_constant<int, R>{});
  for (; i < n; ++i) f(i, std::integral_constant<int, 1>{});
}

/// Calls f(std::integral_constant<int, D>{}) for a runtime head width 1 <= D <= 16 (checked by the caller).
template <class F>
void with_head_dim(index_t D, F&& f) {
  with_count<attention_row_max_head_dim>(D, f);
}

}  // namespace cpu
LST_NAMESPACE_END
