// SPDX-License-Identifier: MIT
/// @file core.cpp
/// @brief Bench of the foundation: GEMM GFLOP/s on transformer shapes for lst's dispatch against raw Eigen
/// and
///        the machine's measured single-core FMA peak; expression-evaluation bandwidth against memcpy.
///
/// Run: build/release/bench/bench_core [--reps N]   (scripts/bench.sh does build + run)
/// Every figure is the median of N timed repetitions, peers measured in the same process, interleaved so that
/// frequency drift hits both sides alike.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#if defined(__AVX__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include <Eigen/Core>
#include <lst/lst.hpp>
#include <unsupported/Eigen/SpecialFunctions>

using namespace lst;
using Clock = std::chrono::steady_clock;

namespace {

int g_reps = 7;

template <class F>
double seconds_of(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// Median seconds per call of a and of b, timed alternately; each sample repeats the call until it has run
/// for at least 50 ms so that timer resolution never matters.
template <class A, class B>
std::pair<double, double> paired_median(A&& a, B&& b) {
  a();
  b();  // warm caches and page-in
  int inner = 1;
  while (seconds_of([&] {
           for (int i = 0; i < inner; ++i) a();
         }) < 0.05)
    inner *= 2;
  std::vector<double> ta, tb;
  for (int r = 0; r < g_reps; ++r) {
    ta.push_back(seconds_of([&] {
                   for (int i = 0; i < inner; ++i) a();
                 }) /
                 inner);
    tb.push_back(seconds_of([&] {
                   for (int i = 0; i < inner; ++i) b();
                 }) /
                 inner);
  }
  return {median(ta), median(tb)};
}

/// Peak single-core fp32 throughput: independent FMA chains, enough to cover FMA latency x issue width, in
/// the widest vectors the build targets (AVX-512 when -march=native finds it, else AVX2).
#if defined(__AVX512F__)
using PeakVector = __m512;
constexpr int peak_lanes = 16;
inline PeakVector peak_set1(float x) { return _mm512_set1_ps(x); }
inline PeakVector peak_fma(PeakVector a, PeakVector b, PeakVector c) { return _mm512_fmadd_ps(a, b, c); }
inline PeakVector peak_add(PeakVector a, PeakVector b) { return _mm512_add_ps(a, b); }
inline void peak_store(float* p, PeakVector a) { _mm512_storeu_ps(p, a); }
constexpr const char* peak_isa = "AVX-512";
#elif defined(__AVX__) && defined(__FMA__)
using PeakVector = __m256;
constexpr int peak_lanes = 8;
inline PeakVector peak_set1(float x) { return _mm256_set1_ps(x); }
inline PeakVector peak_fma(PeakVector a, PeakVector b, PeakVector c) { return _mm256_fmadd_ps(a, b, c); }
inline PeakVector peak_add(PeakVector a, PeakVector b) { return _mm256_add_ps(a, b); }
inline void peak_store(float* p, PeakVector a) { _mm256_storeu_ps(p, a); }
constexpr const char* peak_isa = "AVX2";
#else
constexpr const char* peak_isa = "none";
#endif

/// GFLOP/s of independent FMA chains on `workers` threads at once (each its own chains), median of g_reps:
/// one thread gives the core's peak, every thread what the machine gives when all its cores compute (on a
/// VM, vCPUs sharing a host core or stolen by neighbours show here).
double measure_peak_gflops(int workers = 1) {
#if defined(__AVX512F__) || (defined(__AVX__) && defined(__FMA__))
#if !defined(_OPENMP)
  workers = 1;  // no threads to run them on
#endif
  constexpr int chains = 12;
  const long iters = 20'000'000;
  std::vector<double> samples;
  for (int r = 0; r < g_reps; ++r) {
    const double s = seconds_of([&] {
#if defined(_OPENMP)
#pragma omp parallel num_threads(workers)
#endif
      {
        PeakVector acc[chains];
        for (int c = 0; c < chains; ++c) acc[c] = peak_set1(float(c) * 1e-3f);
        // From volatile reads: as compile-time constants the compiler folded them into memory operands of
        // every FMA, and those loads held the loop to 135 GFLOP/s on this machine where register operands
        // reach 210.
        volatile float mv = 0.999999f, av = 1e-7f;
        const PeakVector m = peak_set1(mv), a = peak_set1(av);
        for (long i = 0; i < iters; ++i)
          for (int c = 0; c < chains; ++c) acc[c] = peak_fma(acc[c], m, a);
        float sink[peak_lanes];
        PeakVector total = acc[0];
        for (int c = 1; c < chains; ++c) total = peak_add(total, acc[c]);
        peak_store(sink, total);
        if (sink[0] == 12345.f) std::puts("");  // keep the loop alive
      }
    });
    samples.push_back(double(workers) * double(iters) * chains * peak_lanes * 2 / s / 1e9);
  }
  return median(samples);
#else
  (void)workers;
  return 0.0;  // no AVX+FMA at compile time: built without -march=native on an FMA machine
#endif
}

struct GemmShape {
  const char* label;
  index_t batch, m, n, k;
};

void bench_gemm(double peak) {
  const GemmShape shapes[] = {
      {"2048x384x384 (q/k/v/out proj, d=384)", 1, 2048, 384, 384},
      {"2048x384x1536 (FFN down, d=384)", 1, 2048, 384, 1536},
      {"2048x1536x384 (FFN up, d=384)", 1, 2048, 1536, 384},
      {"2048x768x3072 (FFN down, d=768)", 1, 2048, 768, 3072},
      {"16x12 x 128x128x32 (attention QK^T)", 16 * 12, 128, 128, 32},
  };
  std::printf(
      "\n| GEMM M x N x K (fp32, 1 thread) | lst GFLOP/s | raw Eigen GFLOP/s | lst / Eigen | lst / peak |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  Rng rng(1);
  for (const GemmShape& s : shapes) {
    // lst: activations (batch, M, K) row-major times weights (N, K) transposed, as Linear and attention call
    // it.
    Tensor<float> a(Shape{s.batch, s.m, s.k}), w(Shape{s.batch, s.n, s.k}), c(Shape{s.batch, s.m, s.n});
    init::uniform(a.view(), rng, -1, 1);
    init::uniform(w.view(), rng, -1, 1);
    // Raw Eigen: the canonical column-major MatrixXf product on the same sizes.
    std::vector<Eigen::MatrixXf> ea(s.batch), eb(s.batch), ec(s.batch);
    for (index_t i = 0; i < s.batch; ++i) {
      ea[i] = Eigen::MatrixXf::Random(s.m, s.k);
      eb[i] = Eigen::MatrixXf::Random(s.k, s.n);
      ec[i] = Eigen::MatrixXf::Zero(s.m, s.n);
    }
    auto run_lst = [&] {
      gemm_batched<float>(Trans::no, Trans::yes, 1.f, MatrixRef<const float>(a.data(), s.m, s.k), s.m * s.k,
                          MatrixRef<const float>(w.data(), s.n, s.k), s.n * s.k, 0.f,
                          MatrixRef<float>(c.data(), s.m, s.n), s.m * s.n, s.batch);
    };
    auto run_eigen = [&] {
      for (index_t i = 0; i < s.batch; ++i) ec[i].noalias() = ea[i] * eb[i];
    };
    const auto [tl, te] = paired_median(run_lst, run_eigen);
    const double flops = 2.0 * double(s.batch) * double(s.m) * double(s.n) * double(s.k);
    const double gl = flops / tl / 1e9, ge = flops / te / 1e9;
    std::printf("| %s | %.1f | %.1f | %.1f%% | %.1f%% |\n", s.label, gl, ge, 100 * gl / ge,
                peak > 0 ? 100 * gl / peak : 0.0);
  }
}

struct NarrowShape {
  const char* label;
  Trans ta, tb;
  index_t m, n, k;
};

/// The LST side network's products at r = 8 (width 48, FFN 192, ladders from d = 384) on 4096 tokens (batch
/// 32, sequence 128), and the backbone's FFN and weight-gradient products on 2048: lst's gemm() (which
/// takes cpu::narrow_gemm where narrow_gemm_applies) against Eigen's product on the same row-major
/// operands, which is what gemm() ran before. "In cache" repeats one product, whose operands
/// stay in L2; "cold" runs it on 16 sets of operands in turn (tens of MiB), as a training step meets them:
/// written by the previous pass, out of L2.
void bench_narrow_gemm(double peak) {
  const index_t tokens = 4096;
  const int sets = 16;
  const NarrowShape shapes[] = {
      {"4096x48x48 (side q/k/v/out, x W^T)", Trans::no, Trans::yes, tokens, 48, 48},
      {"4096x192x48 (side FFN up, x W^T)", Trans::no, Trans::yes, tokens, 192, 48},
      {"4096x48x192 (side FFN down, x W^T)", Trans::no, Trans::yes, tokens, 48, 192},
      {"4096x48x384 (ladder, x W^T)", Trans::no, Trans::yes, tokens, 48, 384},
      {"4096x48x192 (side FFN down input gradient, dy W)", Trans::no, Trans::no, tokens, 48, 192},
      {"48x48x4096 (side weight gradient, dy^T x)", Trans::yes, Trans::no, 48, 48, tokens},
      {"48x384x4096 (ladder weight gradient, dy^T x)", Trans::yes, Trans::no, 48, 384, tokens},
      {"2048x1536x384 (backbone FFN up, x W^T)", Trans::no, Trans::yes, 2048, 1536, 384},
      {"2048x384x1536 (backbone FFN up input gradient, dy W)", Trans::no, Trans::no, 2048, 384, 1536},
      {"384x384x2048 (backbone q/k/v/out weight gradient, dy^T x)", Trans::yes, Trans::no, 384, 384, 2048},
      {"1536x384x2048 (backbone FFN up weight gradient, dy^T x)", Trans::yes, Trans::no, 1536, 384, 2048},
  };
  std::printf(
      "\n| packing-free (narrow) GEMM M x N x K (fp32, 1 thread) | lst GFLOP/s | Eigen on the same operands "
      "GFLOP/s | lst / "
      "Eigen | lst / peak | lst cold GFLOP/s | Eigen cold GFLOP/s | lst / Eigen, cold |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  Rng rng(3);
  for (const NarrowShape& s : shapes) {
    std::vector<Tensor<float>> a, b, c;
    for (int i = 0; i < sets; ++i) {
      a.emplace_back(s.ta == Trans::no ? Shape{s.m, s.k} : Shape{s.k, s.m});
      b.emplace_back(s.tb == Trans::no ? Shape{s.k, s.n} : Shape{s.n, s.k});
      c.emplace_back(Shape{s.m, s.n});
      init::uniform(a.back().view(), rng, -1, 1);
      init::uniform(b.back().view(), rng, -1, 1);
    }
    const auto run_lst = [&](int i) { gemm<float>(s.ta, s.tb, 1.f, a[i], b[i], 0.f, c[i]); };
    const auto run_eigen = [&](int i) {
      const detail::ConstEigenMap<float> ma(a[i].data(), a[i].dim(0), a[i].dim(1),
                                            Eigen::OuterStride<>(a[i].dim(1)));
      const detail::ConstEigenMap<float> mb(b[i].data(), b[i].dim(0), b[i].dim(1),
                                            Eigen::OuterStride<>(b[i].dim(1)));
      detail::EigenMap<float> mc(c[i].data(), s.m, s.n, Eigen::OuterStride<>(s.n));
      if (s.ta == Trans::no && s.tb == Trans::yes)
        mc.noalias() = ma * mb.transpose();
      else if (s.ta == Trans::no)
        mc.noalias() = ma * mb;
      else
        mc.noalias() = ma.transpose() * mb;
    };
    const auto [tl, te] = paired_median([&] { run_lst(0); }, [&] { run_eigen(0); });
    const auto [tlc, tec] = paired_median(
        [&] {
          for (int i = 0; i < sets; ++i) run_lst(i);
        },
        [&] {
          for (int i = 0; i < sets; ++i) run_eigen(i);
        });
    const double flops = 2.0 * double(s.m) * double(s.n) * double(s.k);
    const double gl = flops / tl / 1e9, ge = flops / te / 1e9;
    const double glc = sets * flops / tlc / 1e9, gec = sets * flops / tec / 1e9;
    std::printf("| %s | %.1f | %.1f | %.1f%% | %.1f%% | %.1f | %.1f | %.1f%% |\n", s.label, gl, ge,
                100 * gl / ge, peak > 0 ? 100 * gl / peak : 0.0, glc, gec, 100 * glc / gec);
  }
}

void bench_expressions() {
  const index_t n = 384 * 32768;  // 12.6 M floats: 48 MiB per tensor, far beyond the caches; rows of 384
  Rng rng(2);
  Tensor<float> a(Shape{n}), b(Shape{n}), c(Shape{n}), y(Shape{n});
  init::uniform(a.view(), rng, -1, 1);
  init::uniform(b.view(), rng, -1, 1);
  init::uniform(c.view(), rng, -1, 1);
  const index_t rows = n / 384;
  Tensor<float> mean(Shape{rows, 1}), rstd(Shape{rows, 1}), gamma(Shape{384}), beta(Shape{384});
  mean.fill(0.1f), rstd.fill(2.f), gamma.fill(1.5f), beta.fill(0.5f);
  std::vector<float> src(static_cast<std::size_t>(n), 1.f), dst(static_cast<std::size_t>(n));
  auto run_memcpy = [&] { std::memcpy(dst.data(), src.data(), sizeof(float) * std::size_t(n)); };
  auto gbps = [&](double bytes, double s) { return bytes / s / 1e9; };

  std::printf(
      "\n| expression (12.6 M fp32 elements) | bytes moved / element | lst GB/s | memcpy GB/s | lst / memcpy "
      "|\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  {
    const auto [t, tm] = paired_median([&] { y = a * b + c; }, run_memcpy);
    std::printf("| y = a * b + c | 16 | %.1f | %.1f | %.1f%% |\n", gbps(16.0 * n, t), gbps(8.0 * n, tm),
                100 * gbps(16.0 * n, t) / gbps(8.0 * n, tm));
  }
  {
    auto x = a.reshape(Shape{rows, 384}), out = y.reshape(Shape{rows, 384});
    const auto [t, tm] = paired_median([&] { out = (x - mean) * rstd * gamma + beta; }, run_memcpy);
    std::printf(
        "| y = (x - mean) * rstd * gamma + beta (broadcast rows of 384) | 8 | %.1f | %.1f | %.1f%% |\n",
        gbps(8.0 * n, t), gbps(8.0 * n, tm), 100 * gbps(8.0 * n, t) / gbps(8.0 * n, tm));
  }
  {
    const auto [t, tm] = paired_median([&] { y = gelu(a); }, run_memcpy);
    std::printf("| y = gelu(a) (erf) | 8 | %.1f | %.1f | %.1f%% |\n", gbps(8.0 * n, t), gbps(8.0 * n, tm),
                100 * gbps(8.0 * n, t) / gbps(8.0 * n, tm));
  }
}

/// The layers' GELU (erf) kernels (backends/cpu/gelu.hpp) against the Eigen array expressions they replaced,
/// on one side FFN's activations at batch 32 (1,700 packed tokens of width 192: 1.3 MiB, in L2 as in a step).
void bench_gelu() {
  const index_t n = 1700 * 192;
  Rng rng(3);
  std::vector<float> x(static_cast<std::size_t>(n)), y(x.size()), slope(x.size());
  for (float& v : x) v = float(2 * rng.normal());
  using Array = Eigen::ArrayXf;
  const Eigen::Map<const Array> xa(x.data(), n);
  Eigen::Map<Array> ya(y.data(), n), sa(slope.data(), n);
  const auto eigen_forward = [&] { ya = 0.5f * xa * (1.f + (xa * 0.70710678f).erf()); };
  const auto eigen_and_slope = [&] {  // Phi, the slope from it, then x Phi: three passes
    ya = 0.5f * (1.f + (xa * 0.70710678f).erf());
    sa = ya + xa * 0.39894228f * (-0.5f * xa * xa).exp();
    ya *= xa;
  };
  const auto [tf, tef] = paired_median([&] { cpu::gelu_erf(x.data(), y.data(), n); }, eigen_forward);
  const auto [ts, tes] =
      paired_median([&] { cpu::gelu_erf_and_slope(x.data(), y.data(), slope.data(), n); }, eigen_and_slope);
  std::printf(
      "\n| GELU (erf), %ld values in L2 | lst ns / value | Eigen array erf ns / value | lst / Eigen time |\n",
      long(n));
  std::printf("|---|---:|---:|---:|\n");
  std::printf("| y = x Phi(x) (forward) | %.3f | %.3f | %.2fx |\n", 1e9 * tf / double(n),
              1e9 * tef / double(n), tf / tef);
  std::printf("| y and slope Phi(x) + x phi(x) (FFN backward) | %.3f | %.3f | %.2fx |\n",
              1e9 * ts / double(n), 1e9 * tes / double(n), ts / tes);
}

/// The side network's attention row kernels on one head of 128 queries against 128 keys, at each number of
/// query rows per call, forward and one-pass backward (recomputing the probabilities): ns per score. D = 4,
/// 8 and 16 are the side heads at r = 8, 4 and 2 (12 heads). The row counts the build takes are marked.
template <int D>
struct AttentionRowsBench {
  index_t n, Tp;
  std::vector<float> q, o, go, gq, kt, vt, dkt, dvt, bias, e, delta;
  std::vector<cpu::SoftmaxRowStats<float>> stats;
  float scale;

  explicit AttentionRowsBench(index_t n_) : n(n_), Tp(cpu::padded_keys<float>(n_)) {
    Rng rng(5);
    for (auto* v : {&q, &o, &go, &gq}) v->resize(std::size_t(n * D));
    for (auto* v : {&kt, &vt, &dkt, &dvt}) v->resize(std::size_t(D * Tp));
    bias.assign(std::size_t(Tp), 0.f);
    e.resize(std::size_t(4 * Tp));
    delta.resize(std::size_t(n));
    stats.resize(std::size_t(n));
    for (auto* v : {&q, &go})
      for (float& x : *v) x = float(rng.uniform(-1, 1));
    for (index_t d = 0; d < D; ++d)
      for (index_t j = 0; j < Tp; ++j) {
        kt[std::size_t(d * Tp + j)] = j < n ? float(rng.uniform(-1, 1)) : 0.f;
        vt[std::size_t(d * Tp + j)] = j < n ? float(rng.uniform(-1, 1)) : 0.f;
      }
    for (index_t j = n; j < Tp; ++j) bias[std::size_t(j)] = -std::numeric_limits<float>::infinity();
    scale = 1.f / std::sqrt(float(D));
    forward<1>();
    for (index_t i = 0; i < n; ++i)
      delta[std::size_t(i)] = cpu::attention_row_delta<float, D>(go.data() + i * D, o.data() + i * D);
  }
  template <int R>
  void forward() {
    cpu::for_row_blocks<R>(n, [&](index_t i, auto count) {
      constexpr int N = decltype(count)::value;
      cpu::attention_rows_forward<float, D, N, false>(q.data() + i * D, o.data() + i * D, D, scale, kt.data(),
                                                      vt.data(), bias.data(), Tp, e.data(), stats.data() + i);
    });
  }
  template <int R>
  void backward() {
    std::fill(dkt.begin(), dkt.end(), 0.f);
    std::fill(dvt.begin(), dvt.end(), 0.f);
    cpu::for_row_blocks<R>(n, [&](index_t i, auto count) {
      constexpr int N = decltype(count)::value;
      cpu::attention_rows_backward<float, D, N, true>(
          q.data() + i * D, go.data() + i * D, gq.data() + i * D, D, scale, kt.data(), vt.data(), bias.data(),
          Tp, stats.data() + i, delta.data() + i, nullptr, dkt.data(), dvt.data());
    });
  }
};

/// One table row per direction: 1, 2 and 4 rows per call, and 4 rows' time over 2 rows' timed in
/// alternation (paired_median), which this machine's drift between two separate timings does not move.
template <int D>
void bench_attention_rows_at() {
  AttentionRowsBench<D> bench(128);
  const double scores = double(bench.n) * double(bench.n);
  const int chosen = cpu::attention_rows_per_call<D>;  // one row count serves both directions (starred)
  const auto cell = [&](double t, int R) {
    return std::to_string(1e9 * t / scores).substr(0, 5) + (R == chosen ? " *" : "");
  };
  const auto row = [&](const char* what, auto one, auto two, auto four) {
    const auto [t1, t2] = paired_median(one, two);
    const auto [t2b, t4] = paired_median(two, four);
    std::printf("| %s, D = %d | %s | %s | %s | %.2f |\n", what, D, cell(t1, 1).c_str(), cell(t2, 2).c_str(),
                cell(t4, 4).c_str(), t4 / t2b);
  };
  row(
      "forward", [&] { bench.template forward<1>(); }, [&] { bench.template forward<2>(); },
      [&] { bench.template forward<4>(); });
  row(
      "backward (recomputing p)", [&] { bench.template backward<1>(); },
      [&] { bench.template backward<2>(); }, [&] { bench.template backward<4>(); });
}

void bench_attention_rows() {
  std::printf(
      "\n| side attention row kernels, one head, 128 x 128 scores (%d vector registers) | ns / score, 1 row "
      "per call | 2 rows | 4 rows | 4 rows / 2 rows, alternated |\n",
      cpu::vector_registers);
  std::printf("|---|---:|---:|---:|---:|\n");
  bench_attention_rows_at<4>();
  bench_attention_rows_at<8>();
  bench_attention_rows_at<16>();
  std::printf("(* the rows per call this build takes)\n");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--reps") == 0) g_reps = std::max(1, std::atoi(argv[i + 1]));
  set_threads(1);  // a one-thread bench, also when built with OpenMP (Eigen's GEMM would take every core)
  std::printf("lst %s core bench: medians of %d repetitions, one thread (Eigen %d.%d.%d)\n", version_string(),
              g_reps, EIGEN_WORLD_VERSION, EIGEN_MAJOR_VERSION, EIGEN_MINOR_VERSION);
  const double peak = measure_peak_gflops();
  std::printf("measured single-core fp32 FMA peak (%s): %.1f GFLOP/s%s\n", peak_isa, peak,
              peak > 0 ? "" : " (not measured: built without AVX+FMA)");
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  if (threads_available() && cores > 1 && peak > 0) {
    const double all = measure_peak_gflops(cores);
    std::printf("measured fp32 FMA peak on all %d hardware threads at once: %.1f GFLOP/s (%.2fx one core)\n",
                cores, all, all / peak);
  }
  bench_gemm(peak);
  bench_narrow_gemm(peak);
  bench_expressions();
  bench_gelu();
  bench_attention_rows();
  return 0;
}
