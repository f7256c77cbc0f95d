// SPDX-License-Identifier: MIT
/// @file functors.hpp
/// @brief The scalar operations expression nodes apply elementwise, and their derivatives where layers need
/// them.
#pragma once

#include <cmath>

#include "../config.hpp"

LST_NAMESPACE_BEGIN
namespace op {

// Unary. Each is a stateless function object, so an expression tree is a type the compiler inlines whole.
struct Neg {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return -x;
  }
};
struct Exp {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return std::exp(x);
  }
};
struct Log {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return std::log(x);
  }
};
struct Tanh {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return std::tanh(x);
  }
};
struct Sqrt {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return std::sqrt(x);
  }
};
struct Rsqrt {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return T(1) / std::sqrt(x);
  }
};
struct Abs {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return std::abs(x);
  }
};
struct Square {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return x * x;
  }
};
struct Relu {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return x > T(0) ? x : T(0);
  }
};
struct Sigmoid {
  // Written so that neither branch overflows exp() for large |x|.
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
  }
};
/// GELU as BERT defines it ("gelu" in Hugging Face configs): x * Phi(x), Phi by erf.
struct GeluErf {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
  }
};
/// GELU's tanh approximation ("gelu_new" / "gelu_pytorch_tanh"), Hendrycks & Gimpel 2016, eq. 2.
struct GeluTanh {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    const T c = T(0.79788456080286535588);  // sqrt(2 / pi)
    return T(0.5) * x * (T(1) + std::tanh(c * (x + T(0.044715) * x * x * x)));
  }
};

// Derivatives of the activations, d act(x) / dx, used by backward passes.
struct ReluGrad {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    return x > T(0) ? T(1) : T(0);
  }
};
struct TanhGrad {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    const T t = std::tanh(x);
    return T(1) - t * t;
  }
};
struct SigmoidGrad {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    const T s = Sigmoid{}(x);
    return s * (T(1) - s);
  }
};
struct GeluErfGrad {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
    const T pdf = T(0.39894228040143267794) * std::exp(T(-0.5) * x * x);  // 1 / sqrt(2 pi)
    return cdf + x * pdf;
  }
};
struct GeluTanhGrad {
  template <class T>
  LST_HOST_DEVICE T operator()(T x) const {
    const T c = T(0.79788456080286535588);
    const T u = c * (x + T(0.044715) * x * x * x);
    const T t = std::tanh(u);
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * c * (T(1) + T(3) * T(0.044715) * x * x);
  }
};

// Binary.
struct Add {
  template <class T>
  LST_HOST_DEVICE T operator()(T a, T b) const {
    return a + b;
  }
};
struct Sub {
  template <class T>
  LST_HOST_DEVICE T operator()(T a, T b) const {
    return a - b;
  }
};
struct Mul {
  template <class T>
  LST_HOST_DEVICE T operator()(T a, T b) const {
    return a * b;
  }
};
struct Div {
  template <class T>
  LST_HOST_DEVICE T operator()(T a, T b) const {
    return a / b;
  }
};
struct Max {
  template <class T>
  LST_HOST_DEVICE T operator()(T a, T b) const {
    return a < b ? b : a;
  }
};
struct Min {
  template <class T>
  LST_HOST_DEVICE T operator()(T a, T b) const {
    return b < a ? b : a;
  }
};
struct Greater {
  template <class T>
  LST_HOST_DEVICE T operator()(T a, T b) const {
    return a > b ? T(1) : T(0);
  }
};
struct Less {
  template <class T>
  LST_HOST_DEVICE T operator()(T a, T b) const {
    return a < b ? T(1) : T(0);
  }
};

}  // namespace op
LST_NAMESPACE_END
