// SPDX-License-Identifier: MIT
// Downstream smoke test: builds against an installed lst found with find_package(lst).
#include <cstdio>
#include <lst/lst.hpp>
int main() {
  lst::Tensor<float> a(lst::Shape{2, 3});
  lst::Tensor<float> b(lst::Shape{2, 3});
  a.fill(1.0f);
  b = a * 2.0f + 1.0f;
  std::printf("lst %s consumer: b[0] = %g\n", lst::version_string(), double(b.data()[0]));
  return b.data()[0] == 3.0f ? 0 : 1;
}
