// SPDX-License-Identifier: MIT
// Compile-must-fail check (tests/CMakeLists.txt, Eigen's failtest pattern): built as is, it must compile;
// built with LST_SHOULD_FAIL_TO_BUILD, it must not, with the message below.
// LST_FAILTEST_EXPECT: lst: operands of an expression live on different backends
#include <lst/lst.hpp>

using namespace lst;

int main() {
  // Views need no allocation: a Cuda view of a host pointer is never read, only typed.
  float host[4] = {1, 2, 3, 4};
  Tensor<float, Cpu> a = Tensor<float, Cpu>::zeros(Shape{4});
  const TensorView<const float, Cuda> b(host, Shape{4});
  const TensorView<const float, Cuda> c(host, Shape{4});
#ifdef LST_SHOULD_FAIL_TO_BUILD
  auto e = a * 2.0f + b;  // a Cpu leaf and a Cuda leaf in one expression
#else
  auto e = a * 2.0f + a;  // the same expression on one backend compiles
  auto f = b * 2.0f + c;  // and so does one wholly on the other
  static_assert(std::is_same_v<expr_backend_t<decltype(f)>, Cuda>);
#endif
  static_assert(std::is_same_v<expr_backend_t<decltype(e)>, Cpu>);
  a = e;
  return a(0) == 0.0f ? 0 : 1;
}
