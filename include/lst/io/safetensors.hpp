// SPDX-License-Identifier: MIT
/// @file safetensors.hpp
/// @brief safetensors checkpoints (huggingface/safetensors format): memory-mapped reading with full
/// validation,
///        atomic writing.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON
/// `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`, then the
/// data buffer, offsets relative to its start. Every rule of the format is checked before any tensor is read,
/// and every error names the file and, where there is one, the tensor.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/dtype.hpp"
#include "../core/tensor.hpp"
#include "mapped_file.hpp"

LST_NAMESPACE_BEGIN
namespace io {

/// One tensor of a safetensors file, as its header describes it.
struct SafetensorsEntry {
  std::string name;
  std::string dtype;         // the format's name: F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, ...
  std::size_t element_size;  // bytes per element
  std::vector<index_t> shape;
  std::size_t begin, end;  // byte range in the data buffer
  index_t numel() const {
    index_t n = 1;
    for (index_t d : shape) n *= d;
    return n;
  }
};

namespace detail {
inline std::size_t safetensors_element_size(const std::string& dtype) {
  static const std::map<std::string, std::size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},  {"U64", 8},     {"I32", 4},    {"U32", 4},
      {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  const auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}
inline std::string shape_string(const std::vector<index_t>& s) {
  std::string out = "(";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + (s.size() == 1 ? ",)" : ")");
}
}  // namespace detail

/// A safetensors file opened read-only. The header is parsed and validated on construction; tensors are read
/// (converted to float or double) or viewed in place (F32 only) on demand.
class SafetensorsFile {
 public:
  /// The largest header accepted: real checkpoints have headers of kilobytes to a few megabytes, and a bigger
  /// length field is almost always a corrupted or foreign file.
  static constexpr std::uint64_t max_header_bytes = 100u << 20;

  explicit SafetensorsFile(const std::string& path) : m_file(path) { parse(); }

  const std::string& path() const { return m_file.path(); }
  const std::vector<SafetensorsEntry>& entries() const { return m_entries; }
  const std::map<std::string, std::string>& metadata() const { return m_metadata; }
  /// The header's JSON text exactly as stored (the identity of a checkpoint's layout).
  const std::string& header() const { return m_header; }
  /// The raw bytes of tensor `name` as stored (for fingerprints; read() converts, view_f32() views F32).
  std::string_view raw(const std::string& name) const {
    const SafetensorsEntry& e = at(name);
    return std::string_view(reinterpret_cast<const char*>(m_data + e.begin), e.end - e.begin);
  }

  const SafetensorsEntry* find(const std::string& name) const {
    const auto it = m_index.find(name);
    return it == m_index.end() ? nullptr : &m_entries[it->second];
  }
  const SafetensorsEntry& at(const std::string& name) const {
    const SafetensorsEntry* e = find(name);
    if (!e)
      fail("tensor '" + name + "' is missing (the file has " + std::to_string(m_entries.size()) +
           " tensors)");
    return *e;
  }

  /// Copies tensor `name` into dst (converting F32/F16/BF16/F64 to T). Its shape must equal dst's.
  template <class T>
  void read(const std::string& name, const TensorView<T, Cpu>& dst) const {
    static_assert(std::is_floating_point_v<T>, "safetensors: read into float or double");
    const SafetensorsEntry& e = at(name);
    check_shape(e, dst.shape());
    const unsigned char* src = m_data + e.begin;
    T* out = dst.data();
    const index_t n = e.numel();
    if (e.dtype == "F32") {
      for (index_t i = 0; i < n; ++i) out[i] = static_cast<T>(load<float>(src + 4 * i));
    } else if (e.dtype == "F64") {
      for (index_t i = 0; i < n; ++i) out[i] = static_cast<T>(load<double>(src + 8 * i));
    } else if (e.dtype == "F16") {
      for (index_t i = 0; i < n; ++i)
        out[i] = static_cast<T>(to_float(f16{load<std::uint16_t>(src + 2 * i)}));
    } else if (e.dtype == "BF16") {
      for (index_t i = 0; i < n; ++i)
        out[i] = static_cast<T>(to_float(bf16{load<std::uint16_t>(src + 2 * i)}));
    } else {
      fail("tensor '" + name + "' has dtype " + e.dtype + ", expected a floating type (F32, F16, BF16, F64)");
    }
  }

  /// Copies integer tensor `name` (I32, or I64 within int32's range) into dst. Its shape must equal dst's.
  void read_i32(const std::string& name, const TensorView<std::int32_t, Cpu>& dst) const {
    const SafetensorsEntry& e = at(name);
    check_shape(e, dst.shape());
    const unsigned char* src = m_data + e.begin;
    const index_t n = e.numel();
    if (e.dtype == "I32") {
      for (index_t i = 0; i < n; ++i) dst.data()[i] = load<std::int32_t>(src + 4 * i);
    } else if (e.dtype == "I64") {
      for (index_t i = 0; i < n; ++i) {
        const std::int64_t v = load<std::int64_t>(src + 8 * i);
        if (v < INT32_MIN || v > INT32_MAX)
          fail("tensor '" + name + "' element " + std::to_string(i) + " = " + std::to_string(v) +
               " does not fit in int32");
        dst.data()[i] = static_cast<std::int32_t>(v);
      }
    } else {
      fail("tensor '" + name + "' has dtype " + e.dtype + ", expected I32 or I64");
    }
  }

  /// Tensor `name` in place, without a copy: F32 only, valid while this object lives. `expected` (optional)
  /// is checked against the stored shape.
  ConstView<float> view_f32(const std::string& name, const Shape& expected = Shape{}) const {
    const SafetensorsEntry& e = at(name);
    if (e.dtype != "F32") fail("tensor '" + name + "' has dtype " + e.dtype + ", a zero-copy view needs F32");
    if (expected.rank > 0) check_shape(e, expected);
    const unsigned char* p = m_data + e.begin;
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(float) != 0)
      fail("tensor '" + name + "' is not 4-byte aligned in the file: read() it instead");
    return ConstView<float>(reinterpret_cast<const float*>(p),
                            Shape::from_range(e.shape.begin(), e.shape.end()));
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    lst::detail::raise<Error>("safetensors file '", m_file.path(), "': ", what);
  }
  template <class U>
  static U load(const unsigned char* p) {
    U v;
    std::memcpy(&v, p, sizeof v);  // the file's data need not be aligned for U
    return v;
  }
  void check_shape(const SafetensorsEntry& e, const Shape& want) const {
    bool same = int(e.shape.size()) == want.rank;
    for (int i = 0; same && i < want.rank; ++i) same = e.shape[std::size_t(i)] == want.dims[i];
    if (!same)
      fail("tensor '" + e.name + "' has shape " + detail::shape_string(e.shape) + ", expected " + want.str());
  }

  void parse() {
    const std::size_t size = m_file.size();
    if (size < 8) fail("file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
    std::uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | m_file.data()[i];  // little-endian on any host
    if (n > max_header_bytes) fail("header length " + std::to_string(n) + " exceeds the 100 MiB limit");
    if (n > size - 8)
      fail("header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) +
           " bytes): truncated?");
    m_header.assign(reinterpret_cast<const char*>(m_file.data()) + 8, static_cast<std::size_t>(n));
    m_data = m_file.data() + 8 + n;
    const std::size_t data_size = size - 8 - static_cast<std::size_t>(n);

    nlohmann::json j;
    try {
      j = nlohmann::json::parse(m_header);
    } catch (const nlohmann::json::exception& e) {
      fail(std::string("header is not valid JSON: ") + e.what());
    }
    if (!j.is_object()) fail("header is not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& name = it.key();
      const nlohmann::json& v = it.value();
      if (name == "__metadata__") {
        if (!v.is_object()) fail("__metadata__ is not an object");
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m.value().is_string()) fail("__metadata__ value '" + m.key() + "' is not a string");
          m_metadata[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      m_entries.push_back(parse_entry(name, v, data_size));
    }
    // Offsets: in range (checked per entry), no overlap, and no hole (the format requires the data buffer to
    // be indexed entirely, which also catches a file with trailing garbage).
    std::vector<const SafetensorsEntry*> by_offset;
    for (const SafetensorsEntry& e : m_entries) by_offset.push_back(&e);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->begin < b->begin; });
    std::size_t covered = 0;
    for (const SafetensorsEntry* e : by_offset) {
      if (e->begin < covered)
        fail("tensor '" + e->name + "' overlaps the tensor before it in the data buffer");
      if (e->begin > covered)
        fail("bytes " + std::to_string(covered) + ".." + std::to_string(e->begin) +
             " of the data buffer belong to no tensor (before '" + e->name + "')");
      covered = e->end;
    }
    if (covered != data_size)
      fail("the data buffer is " + std::to_string(data_size) + " bytes but its tensors cover " +
           std::to_string(covered) + (covered < data_size ? " (trailing bytes)" : ""));
    for (std::size_t i = 0; i < m_entries.size(); ++i) m_index[m_entries[i].name] = i;
  }

  SafetensorsEntry parse_entry(const std::string& name, const nlohmann::json& v,
                               std::size_t data_size) const {
    const std::string where = "tensor '" + name + "': ";
    if (!v.is_object()) fail(where + "entry is not an object");
    SafetensorsEntry e;
    e.name = name;
    const auto dt = v.find("dtype");
    if (dt == v.end() || !dt->is_string()) fail(where + "missing string field 'dtype'");
    e.dtype = dt->get<std::string>();
    e.element_size = detail::safetensors_element_size(e.dtype);
    if (e.element_size == 0) fail(where + "unknown dtype '" + e.dtype + "'");
    const auto sh = v.find("shape");
    if (sh == v.end() || !sh->is_array()) fail(where + "missing array field 'shape'");
    if (sh->size() > std::size_t(max_rank)) fail(where + "rank " + std::to_string(sh->size()) + " exceeds 4");
    std::uint64_t count = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned()) fail(where + "shape entries must be non-negative integers");
      const std::uint64_t x = d.get<std::uint64_t>();
      if (x > (std::uint64_t(1) << 40) || (x && count > (std::uint64_t(1) << 62) / x))
        fail(where + "shape is implausibly large");
      count *= x;
      e.shape.push_back(static_cast<index_t>(x));
    }
    const auto off = v.find("data_offsets");
    if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(where + "'data_offsets' must be [begin, end] with non-negative integers");
    const std::uint64_t b = (*off)[0].get<std::uint64_t>(), en = (*off)[1].get<std::uint64_t>();
    if (b > en || en > data_size)
      fail(where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "] fall outside the " +
           std::to_string(data_size) + "-byte data buffer");
    if (en - b != count * e.element_size)
      fail(where + "data_offsets span " + std::to_string(en - b) + " bytes but shape " +
           detail::shape_string(e.shape) + " of " + e.dtype + " needs " +
           std::to_string(count * e.element_size));
    e.begin = static_cast<std::size_t>(b);
    e.end = static_cast<std::size_t>(en);
    return e;
  }

  MappedFile m_file;
  std::string m_header;
  const unsigned char* m_data = nullptr;
  std::vector<SafetensorsEntry> m_entries;
  std::map<std::string, std::size_t> m_index;
  std::map<std::string, std::string> m_metadata;
};

/// A tensor to write: its name, its values, and the dtype to store them in: F32, F16 or BF16 from `value`,
/// or I32 from `ints` (token ids, masks).
struct NamedTensor {
  std::string name;
  ConstView<float> value;
  std::string dtype = "F32";
  ConstView<std::int32_t> ints = {};
  Shape shape() const { return dtype == "I32" ? ints.shape() : value.shape(); }
  index_t numel() const { return dtype == "I32" ? ints.numel() : value.numel(); }
};

/// Writes a safetensors file atomically (temp file + fsync + rename): an existing file at `path` is replaced
/// only once the new one is complete. Tensors are laid out widest dtype first (then in the given order) and
/// the header is padded with spaces to a multiple of 8 bytes, so every tensor starts aligned for its type and
/// F32 tensors can be viewed in place, as Hugging Face's writer does.
inline void save_safetensors(const std::string& path, const std::vector<NamedTensor>& given,
                             const std::map<std::string, std::string>& metadata = {}) {
  std::vector<const NamedTensor*> tensors;
  for (const NamedTensor& t : given) tensors.push_back(&t);
  std::stable_sort(tensors.begin(), tensors.end(), [](const NamedTensor* a, const NamedTensor* b) {
    return detail::safetensors_element_size(a->dtype) > detail::safetensors_element_size(b->dtype);
  });
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::size_t offset = 0;
  for (const NamedTensor* tp : tensors) {
    const NamedTensor& t = *tp;
    const std::size_t es = detail::safetensors_element_size(t.dtype);
    if (!(t.dtype == "F32" || t.dtype == "F16" || t.dtype == "BF16" || t.dtype == "I32"))
      lst::detail::raise<Error>("save_safetensors '", path, "': tensor '", t.name, "' dtype ", t.dtype,
                                " is not one of F32, F16, BF16, I32");
    if (t.name == "__metadata__" || header.contains(t.name))
      lst::detail::raise<Error>("save_safetensors '", path, "': duplicate or reserved tensor name '", t.name,
                                "'");
    const Shape ts = t.shape();
    std::vector<index_t> shape(ts.dims.begin(), ts.dims.begin() + ts.rank);
    const std::size_t bytes = static_cast<std::size_t>(t.numel()) * es;
    header[t.name] = {{"dtype", t.dtype}, {"shape", shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  write_file_atomically(path, [&](std::FILE* f) {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(std::uint64_t(text.size()) >> (8 * i));
    write_bytes(f, len, 8, path);
    write_bytes(f, text.data(), text.size(), path);
    std::vector<std::uint16_t> half;
    for (const NamedTensor* tp : tensors) {
      const NamedTensor& t = *tp;
      const float* v = t.value.data();
      const std::size_t n = static_cast<std::size_t>(t.numel());
      if (t.dtype == "I32") {
        write_bytes(f, t.ints.data(), n * 4, path);
        continue;
      }
      if (t.dtype == "F32") {
        write_bytes(f, v, n * 4, path);
        continue;
      }
      half.resize(n);
      for (std::size_t i = 0; i < n; ++i) half[i] = t.dtype == "F16" ? to_f16(v[i]).bits : to_bf16(v[i]).bits;
      write_bytes(f, half.data(), n * 2, path);
    }
  });
}

}  // namespace io
LST_NAMESPACE_END
