// SPDX-License-Identifier: MIT
#include <lst/io/safetensors.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gradient_check.hpp"

using namespace lst;
using io::SafetensorsFile;
namespace fs = std::filesystem;

namespace {
struct TempDir {
  fs::path path = fs::temp_directory_path() / ("lst_test_safetensors_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}
void spit(const std::string& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}
/// A raw safetensors file from a header text and a data buffer (length prefix computed unless given).
std::string raw_file(const std::string& header, const std::string& data, std::uint64_t len = ~0ull) {
  if (len == ~0ull) len = header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[std::size_t(i)] = char((len >> (8 * i)) & 0xff);
  return out + header + data;
}
/// Opens and reads every floating tensor; returns the error text ("" when the file is valid).
std::string open_and_read_all(const std::string& p) {
  return lst_test::error_of([&] {
    SafetensorsFile f(p);
    for (const auto& e : f.entries()) {
      if (e.dtype != "F32" && e.dtype != "F16" && e.dtype != "BF16" && e.dtype != "F64") continue;
      Tensor<float> t(Shape::from_range(e.shape.begin(), e.shape.end()));
      f.read(e.name, t.view());
    }
  });
}
}  // namespace

TEST_CASE("safetensors round trip: F32, F16, BF16, metadata, zero-copy view, read as double") {
  TempDir dir;
  Rng rng(1);
  auto a = lst_test::randn(Shape{3, 5}, rng);
  Tensor<float> w(Shape{3, 5}), b(Shape{7}), c(Shape{2, 2, 3});
  for (index_t i = 0; i < 15; ++i) w.data()[i] = float(a.data()[i]);
  for (index_t i = 0; i < 7; ++i) b.data()[i] = 0.5f * float(i) - 1.f;
  for (index_t i = 0; i < 12; ++i) c.data()[i] = float(i) / 3.f;
  const std::string p = dir.file("ckpt.safetensors");
  io::save_safetensors(
      p, {{"layer.bias", b.cview(), "F16"}, {"layer.weight", w.cview()}, {"x.c", c.cview(), "BF16"}},
      {{"format", "pt"}});
  SafetensorsFile f(p);
  CHECK(f.entries().size() == 3);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.header().size() % 8 == 0);
  CHECK(f.at("layer.weight").begin == 0);  // wider dtypes first: every tensor aligned
  const ConstView<float> v = f.view_f32("layer.weight", Shape{3, 5});
  CHECK(v.to_vector() == w.to_vector());
  Tensor<double> bd(Shape{7});
  f.read("layer.bias", bd.view());
  for (index_t i = 0; i < 7; ++i) CHECK(bd(i) == double(to_float(to_f16(b(i)))));
  Tensor<float> cf(Shape{2, 2, 3});
  f.read("x.c", cf.view());
  for (index_t i = 0; i < 12; ++i) CHECK(cf.data()[i] == to_float(to_bf16(c.data()[i])));
}

TEST_CASE("safetensors errors name the file and the tensor") {
  TempDir dir;
  const std::string p = dir.file("bad.safetensors");
  Tensor<float> w = Tensor<float>::full(Shape{2, 3}, 1.f);
  io::save_safetensors(p, {{"w", w.cview()}});
  SafetensorsFile good(p);
  Tensor<float> wrong(Shape{3, 2});
  std::string msg = lst_test::error_of([&] { good.read("w", wrong.view()); });
  CHECK(msg.find(p) != std::string::npos);
  CHECK(msg.find("'w'") != std::string::npos);
  CHECK(msg.find("(2, 3)") != std::string::npos);
  CHECK(msg.find("(3, 2)") != std::string::npos);
  CHECK(lst_test::error_of([&] { good.at("encoder.missing"); }).find("encoder.missing") != std::string::npos);

  const std::string data(24, '\0');
  auto error_for = [&](const std::string& bytes) {
    spit(p, bytes);
    return open_and_read_all(p);
  };
  CHECK(error_for(raw_file("{not json", data)).find("not valid JSON") != std::string::npos);
  CHECK(error_for(raw_file(R"({"w":{"dtype":"Q4","shape":[2,3],"data_offsets":[0,24]}})", data)).find("Q4") !=
        std::string::npos);
  CHECK(error_for(raw_file(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,28]}})", data))
            .find("outside") != std::string::npos);
  CHECK(error_for(raw_file(R"({"w":{"dtype":"F32","shape":[2,4],"data_offsets":[0,24]}})", data))
            .find("needs 32") != std::string::npos);
  CHECK(error_for(raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
                           R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                           data))
            .find("overlaps") != std::string::npos);
  CHECK(error_for(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})",
                           data))
            .find("belong to no tensor") != std::string::npos);
  CHECK(error_for(raw_file(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})", data, 1ull << 40))
            .find("exceeds") != std::string::npos);
  CHECK(error_for(raw_file(R"({"w":{"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]}})", data))
            .find("non-negative") != std::string::npos);
  CHECK(error_for("abc").find("shorter than") != std::string::npos);
  CHECK(lst_test::error_of([&] { SafetensorsFile(dir.file("nope.safetensors")); }).find("nope.safetensors") !=
        std::string::npos);
}

TEST_CASE("safetensors: every truncation of a valid file is an error, never a crash") {
  TempDir dir;
  Tensor<float> w = Tensor<float>::full(Shape{4, 3}, 2.f), b = Tensor<float>::full(Shape{3}, 1.f);
  const std::string p = dir.file("full.safetensors");
  io::save_safetensors(p, {{"w", w.cview()}, {"b", b.cview(), "F16"}}, {{"k", "v"}});
  const std::string bytes = slurp(p);
  const std::string cut = dir.file("cut.safetensors");
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    spit(cut, bytes.substr(0, n));
    CAPTURE(n);
    CHECK(!open_and_read_all(cut).empty());
  }
  spit(cut, bytes + "x");  // and one byte too many
  CHECK(open_and_read_all(cut).find("trailing") != std::string::npos);
}

TEST_CASE("safetensors: random byte corruption gives a valid file or an lst::Error, never a crash") {
  TempDir dir;
  Tensor<float> w = Tensor<float>::full(Shape{5, 4}, 0.25f);
  const std::string p = dir.file("base.safetensors");
  io::save_safetensors(p, {{"weight", w.cview()}, {"bias", w[0], "BF16"}});
  const std::string bytes = slurp(p);
  const std::string q = dir.file("flipped.safetensors");
  Rng rng(99);
  int errors = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string mutated = bytes;
    const int flips = 1 + int(rng.below(3));
    for (int k = 0; k < flips; ++k) mutated[rng.below(std::uint32_t(mutated.size()))] = char(rng.below(256));
    spit(q, mutated);
    try {
      errors += !open_and_read_all(q).empty();
    } catch (const std::exception& e) {
      FAIL("a corrupted file raised a non-lst exception: " << e.what());
    }
  }
  CHECK(errors > 100);  // most corruptions of the header are caught
}

TEST_CASE("save_safetensors replaces a file atomically and leaves it intact on failure") {
  TempDir dir;
  const std::string p = dir.file("keep.safetensors");
  Tensor<float> w = Tensor<float>::full(Shape{2}, 3.f);
  io::save_safetensors(p, {{"w", w.cview()}});
  const std::string before = slurp(p);
  CHECK_THROWS_AS(io::save_safetensors(p, {{"w", w.cview()}, {"w", w.cview()}}), Error);  // duplicate name
  CHECK_THROWS_AS(io::save_safetensors(p, {{"w", w.cview(), "I8"}}), Error);
  CHECK(slurp(p) == before);
  for (const auto& entry : fs::directory_iterator(dir.path))
    CHECK(entry.path().filename().string().find(".tmp.") == std::string::npos);
  CHECK_THROWS_AS(io::save_safetensors(dir.file("no/such/dir/x.safetensors"), {{"w", w.cview()}}), Error);
}
