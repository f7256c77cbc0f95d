// SPDX-License-Identifier: MIT
/// @file gradient_check.hpp
/// @brief The one gradient checker every backward test uses: central finite differences in double precision
///        (mlpack's CheckGradient, llm.c's comparison against a reference).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <lst/lst.hpp>

namespace lst_test {

using lst::index_t;

/// A tensor whose gradient is checked: its values (perturbed in place) and backward's analytic gradient.
struct Checked {
  std::string name;
  lst::TensorView<double> value;
  lst::TensorView<double> grad;
  /// The true gradient is identically zero (e.g. attention's key bias: softmax ignores a constant added to a
  /// whole score row). Then both gradients must vanish: analytic below 1e-12, numeric within FD noise.
  bool zero_expected = false;
};

/// Marks the entry called `name` as having an identically zero gradient; fails if there is none.
inline void expect_zero(std::vector<Checked>& tensors, const std::string& name) {
  for (Checked& c : tensors)
    if (c.name == name) {
      c.zero_expected = true;
      return;
    }
  FAIL("no checked tensor named " << name);
}

/// Every parameter of an arena, with the arena's gradients as the analytic values.
inline std::vector<Checked> parameters_of(const lst::ParameterArena<double>& arena) {
  std::vector<Checked> out;
  for (std::size_t i = 0; i < arena.count(); ++i)
    out.push_back({arena.info(i).name, arena.value(i), arena.grad(i)});
  return out;
}

/// Relative error ||analytic - numeric|| / max(||analytic||, ||numeric||, 1e-8) for each checked tensor.
///
/// `loss()` runs the forward pass on the current values and returns a scalar; `backward()` must have been
/// run by the caller already, leaving analytic gradients in each Checked::grad. Each element is perturbed
/// by +-h; with h = 1e-5 in double the truncation error (~h^2) and rounding error (~1e-16 / h) both sit far
/// below the 1e-6 tolerance the tests use.
inline void check_gradients(const std::vector<Checked>& tensors, const std::function<double()>& loss,
                            double tolerance = 1e-6, double h = 1e-5) {
  for (const Checked& c : tensors) {
    REQUIRE_MESSAGE(c.grad.data() != nullptr, c.name << ": no analytic gradient");
    REQUIRE_MESSAGE(c.grad.numel() == c.value.numel(), c.name << ": gradient size differs");
    double diff2 = 0, a2 = 0, n2 = 0;
    for (index_t i = 0; i < c.value.numel(); ++i) {
      double& v = c.value.data()[i];
      const double saved = v;
      v = saved + h;
      const double up = loss();
      v = saved - h;
      const double down = loss();
      v = saved;
      const double numeric = (up - down) / (2 * h), analytic = c.grad.data()[i];
      diff2 += (analytic - numeric) * (analytic - numeric);
      a2 += analytic * analytic;
      n2 += numeric * numeric;
    }
    if (c.zero_expected) {
      INFO(c.name << ": expected a zero gradient, |analytic| " << std::sqrt(a2) << ", |numeric| "
                  << std::sqrt(n2));
      CHECK(std::sqrt(a2) < 1e-12);
      CHECK(std::sqrt(n2) < 1e-7);
      continue;
    }
    const double rel = std::sqrt(diff2) / std::max({std::sqrt(a2), std::sqrt(n2), 1e-8});
    INFO(c.name << ": relative error " << rel << " over " << c.value.numel() << " elements, |grad| "
                << std::sqrt(a2));
    CHECK(rel < tolerance);
    // A gradient that is zero everywhere passes any comparison with a flat loss: insist on signal.
    CHECK(std::sqrt(n2) > 0);
  }
}

/// sum(y * g): the scalar whose gradient with respect to y is g, so backward can be fed an arbitrary dy.
/// Every got[i] within `tol` times the largest |want| of want[i]: two computations of the same gradients that
/// sum in another order differ by the rounding of their largest terms, and near-zero entries carry that
/// absolute error, not a relative one.
template <class Real>
void expect_close_to_largest(const std::vector<Real>& got, const std::vector<Real>& want, Real tol) {
  REQUIRE(got.size() == want.size());
  Real largest = 0;
  for (const Real v : want) largest = std::max(largest, std::abs(v));
  for (std::size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    REQUIRE(std::abs(got[i] - want[i]) <= tol * largest);
  }
}

/// first (B, q, C) against the first q rows of each sequence of whole (B, T, C), to relative `eps`: a layer
/// asked for its first rows only against the whole layer.
template <class Real>
void expect_first_rows(const Real* first, const Real* whole, index_t B, index_t T, index_t q, index_t C,
                       double eps) {
  for (index_t b = 0; b < B; ++b)
    for (index_t i = 0; i < q * C; ++i) {
      CAPTURE(b);
      CAPTURE(i);
      REQUIRE(first[b * q * C + i] == doctest::Approx(whole[b * T * C + i]).epsilon(eps));
    }
}

inline double dot(lst::ConstView<double> y, lst::ConstView<double> g) {
  double s = 0;
  for (index_t i = 0; i < y.numel(); ++i) s += y.data()[i] * g.data()[i];
  return s;
}

/// A tensor of N(0, std^2) values.
inline lst::Tensor<double> randn(const lst::Shape& shape, lst::Rng& rng, double std = 1.0,
                                 lst::MemCategory cat = lst::MemCategory::workspace) {
  lst::Tensor<double> t(shape, cat);
  lst::init::normal(t.view(), rng, std);
  return t;
}

/// Random values into every parameter of an arena (weights at a scale where tanh-like functions stay curved).
inline void randomize(lst::ParameterArena<double>& arena, lst::Rng& rng, double std = 0.5) {
  for (std::size_t i = 0; i < arena.count(); ++i) lst::init::normal(arena.value(i), rng, std);
}

/// The real checkpoint's directory: $LST_MODEL_DIR, else scripts/fetch-model.py's default cache.
inline std::string model_dir() {
  if (const char* env = std::getenv("LST_MODEL_DIR")) return env;
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/lst/all-MiniLM-L6-v2";
}

/// Runs `f` and returns the message of the lst::Error it throws ("" if none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const lst::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace lst_test
