// SPDX-License-Identifier: MIT
// Compile-must-fail check (tests/CMakeLists.txt, Eigen's failtest pattern): built as is, it must compile;
// built with LST_SHOULD_FAIL_TO_BUILD, it must not, with the message below.
// LST_FAILTEST_EXPECT: lst: Executor<Cpu> evaluates expressions of Cpu tensors only
#include <lst/lst.hpp>

using namespace lst;

int main() {
  float host[4] = {1, 2, 3, 4};
  Tensor<float, Cpu> a = Tensor<float, Cpu>::zeros(Shape{4});
  const TensorView<const float, Cuda> b(host, Shape{4});
#ifdef LST_SHOULD_FAIL_TO_BUILD
  Executor<Cpu>::assign(a.view(), b * 2.0f);  // the CPU's executor asked to read a Cuda tensor
#else
  Executor<Cpu>::assign(a.view(), a * 2.0f + 1.0f);                 // a Cpu expression
  Executor<Cpu>::assign(a.view(), ScalarExpr<float>(1.0f) * 2.0f);  // scalars only: no backend, any executor
#endif
  return a(0) == 2.0f ? 0 : 1;
}
