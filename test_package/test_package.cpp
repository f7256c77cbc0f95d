// SPDX-License-Identifier: MIT
// Conan test_package: builds and runs against the packaged lst headers.
#include <cstdio>
#include <lst/lst.hpp>
int main() {
  lst::Tensor<float> a(lst::Shape{2, 3});
  lst::Tensor<float> b(lst::Shape{2, 3});
  a.fill(1.0f);
  b = a * 2.0f + 1.0f;
  std::printf("lst %s test_package: b = [", lst::version_string());
  for (int i = 0; i < 6; ++i) std::printf(i ? ", %g" : "%g", double(b.data()[i]));
  std::printf("]\n");
  for (int i = 0; i < 6; ++i)
    if (b.data()[i] != 3.0f) return 1;
  std::printf("lst test_package: OK\n");
  return 0;
}
