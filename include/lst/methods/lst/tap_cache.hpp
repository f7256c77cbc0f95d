// SPDX-License-Identifier: MIT
/// @file tap_cache.hpp
/// @brief Tap caching: with a frozen, deterministic backbone (inference mode, no dropout), the ladder inputs
/// of
///        a training example are the same every epoch. The first epoch stores them; later epochs feed the
///        side network from the cache and skip the backbone entirely, so an epoch costs the side network
///        alone.
///
/// Storage is RAM (one block, category `taps`) or a memory-mapped file that outlives the process (a resumed
/// or repeated run reuses it). A file is reused only if its key matches: the key names the backbone, every
/// token id of the training set (so the tokenizer, its settings, the truncation and the data file are all
/// covered), the cached layers and the storage type. Any difference, or a damaged file, rebuilds it.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../../core/dtype.hpp"
#include "../../core/hash.hpp"
#include "../../core/tensor.hpp"
#include "lst_config.hpp"

LST_NAMESPACE_BEGIN

class TapCache {
 public:
  enum class Storage { ram, disk };

  /// A cache for examples of `lengths` tokens, holding backbone states `taps` (0 = embeddings, l + 1 = layer
  /// l) of width `width` in `dtype`. `key` identifies what the states were computed from; `path` is the file
  /// for Storage::disk.
  TapCache(std::vector<std::uint32_t> lengths, std::vector<index_t> taps, index_t width, TapDtype dtype,
           std::string key, Storage storage, std::string path = {})
      : m_lengths(std::move(lengths)),
        m_taps(std::move(taps)),
        m_width(width),
        m_dtype(dtype),
        m_key(std::move(key)),
        m_storage(storage),
        m_path(std::move(path)) {
    LST_CHECK(!m_taps.empty() && width > 0, "tap cache: nothing to cache");
    m_offsets.reserve(m_lengths.size() + 1);
    std::size_t elements = 0;
    for (std::uint32_t len : m_lengths) {
      m_offsets.push_back(elements);
      elements += std::size_t(len) * m_taps.size() * std::size_t(width);
    }
    m_offsets.push_back(elements);
    m_data_bytes = elements * element_size();
    if (storage == Storage::ram) {
      m_ram = Tensor<std::uint8_t>(Shape{index_t(m_data_bytes + m_lengths.size())}, MemCategory::taps);
      std::memset(m_ram.data() + m_data_bytes, 0, m_lengths.size());
      m_base = m_ram.data();
      m_filled = m_ram.data() + m_data_bytes;
    } else {
      open_file();
    }
  }
  TapCache(const TapCache&) = delete;
  TapCache& operator=(const TapCache&) = delete;
  ~TapCache() {
    if (m_map) ::munmap(m_map, m_map_bytes);
  }

  /// The key of a training set encoded as `examples`' token ids, on `backbone`, caching `taps` in `dtype`.
  template <class Examples>
  static std::string make_key(const std::string& backbone, const Examples& examples,
                              const std::vector<index_t>& taps, TapDtype dtype) {
    std::uint64_t h = fnv1a64("lst tap cache");
    for (const auto& e : examples) {
      h = fnv1a64(std::string_view(reinterpret_cast<const char*>(e.ids.data()), e.ids.size() * 4), h);
      h = fnv1a64(std::string_view(reinterpret_cast<const char*>(e.type_ids.data()), e.type_ids.size() * 4),
                  h);
      h = fnv1a64("|", h);
    }
    std::string t;
    for (index_t l : taps) t += std::to_string(l) + ",";
    return "backbone=" + backbone + " examples=" + std::to_string(examples.size()) + " ids=" + hex64(h) +
           " taps=" + t + " dtype=" + to_string(dtype);
  }

  const std::vector<index_t>& taps() const { return m_taps; }
  /// Slot of backbone state `tap` in this cache, or -1.
  index_t slot(index_t tap) const {
    for (std::size_t i = 0; i < m_taps.size(); ++i)
      if (m_taps[i] == tap) return index_t(i);
    return -1;
  }
  bool filled(std::uint32_t row) const { return m_filled[row] != 0; }
  std::size_t filled_count() const {
    std::size_t n = 0;
    for (std::size_t i = 0; i < m_lengths.size(); ++i) n += m_filled[i] != 0;
    return n;
  }
  /// Whether a file from an earlier run was found valid and reused.
  bool reused() const { return m_reused; }
  std::size_t bytes() const { return m_data_bytes; }
  const std::string& key() const { return m_key; }

  /// Stores example `row`'s state for slot `slot` (its `length` rows of `width` values).
  void store(std::uint32_t row, index_t slot, const float* state) {
    const std::size_t n = std::size_t(m_lengths.at(row)) * std::size_t(m_width);
    unsigned char* dst = at(row, slot);
    if (m_dtype == TapDtype::f32) {
      std::memcpy(dst, state, n * 4);
      return;
    }
    to_half_storage(m_dtype, state, reinterpret_cast<std::uint16_t*>(dst), n);
  }
  /// Example `row`'s state for `slot` where it lies (length x width floats), for an f32 cache: what a ladder
  /// reads in place instead of a copy. Valid while the cache lives.
  const float* state(std::uint32_t row, index_t slot) const {
    LST_CHECK(m_dtype == TapDtype::f32, "tap cache: a ", to_string(m_dtype),
              " cache has no float states to read in place");
    LST_CHECK(filled(row), "tap cache: example ", row, " was never stored");
    return reinterpret_cast<const float*>(at(row, slot));
  }
  TapDtype dtype() const { return m_dtype; }
  /// Marks `row` complete (after every slot was stored).
  void mark_filled(std::uint32_t row) { m_filled[row] = 1; }
  /// Reads example `row`'s state for `slot` into `out` (length x width floats). With `rows` > 0, `out` holds
  /// `rows` x width floats (a padded batch row) and the rows past the example's length are set to 0.
  void load(std::uint32_t row, index_t slot, float* out, index_t rows = 0) const {
    LST_CHECK(filled(row), "tap cache: example ", row, " was never stored");
    LST_CHECK(rows == 0 || rows >= index_t(m_lengths.at(row)), "tap cache: example ", row, " has ",
              m_lengths.at(row), " tokens, more than the ", rows, " rows to load it into");
    const std::size_t n = std::size_t(m_lengths.at(row)) * std::size_t(m_width);
    const unsigned char* src = at(row, slot);
    if (m_dtype == TapDtype::f32)
      std::memcpy(out, src, n * 4);
    else
      from_half_storage(m_dtype, reinterpret_cast<const std::uint16_t*>(src), out, n);
    if (rows > 0) std::fill(out + n, out + std::size_t(rows) * std::size_t(m_width), 0.0f);
  }

 private:
  std::size_t element_size() const { return m_dtype == TapDtype::f32 ? 4 : 2; }
  unsigned char* at(std::uint32_t row, index_t slot) const {
    LST_CHECK(row < m_lengths.size() && slot >= 0 && slot < index_t(m_taps.size()), "tap cache: row ", row,
              " slot ", slot, " is outside ", m_lengths.size(), " rows and ", m_taps.size(), " slots");
    return m_base +
           (m_offsets[row] + std::size_t(slot) * m_lengths[row] * std::size_t(m_width)) * element_size();
  }

  /// File layout: "LSTTAPS1", 8-byte header length, the JSON header (key, sizes), one filled-flag byte per
  /// example, then the states, starting on a 4096-byte boundary.
  void open_file() {
    const nlohmann::json header = {{"key", m_key}, {"rows", m_lengths.size()}, {"data_bytes", m_data_bytes}};
    const std::string text = header.dump();
    const std::size_t flags_at = 16 + text.size();
    const std::size_t data_at = (flags_at + m_lengths.size() + 4095) / 4096 * 4096;
    m_map_bytes = data_at + m_data_bytes;
    const int fd = ::open(m_path.c_str(), O_RDWR | O_CREAT, 0644);
    LST_CHECK(fd >= 0, "tap cache '", m_path, "': cannot open: ", std::strerror(errno));
    struct stat st {};
    ::fstat(fd, &st);
    bool valid = std::size_t(st.st_size) == m_map_bytes;
    if (valid) {  // same size: compare the magic and the header byte for byte
      std::string got(16 + text.size(), '\0');
      valid = ::pread(fd, got.data(), got.size(), 0) == ssize_t(got.size()) &&
              got.compare(0, 8, "LSTTAPS1") == 0 && got.compare(16, std::string::npos, text) == 0;
    }
    if (!valid) {  // new, stale or damaged: start empty
      if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, off_t(m_map_bytes)) != 0) {
        const int e = errno;
        ::close(fd);
        detail::raise<Error>("tap cache '", m_path, "': cannot size the file to ", m_map_bytes,
                             " bytes: ", std::strerror(e));
      }
    }
    void* p = ::mmap(nullptr, m_map_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int e = errno;
    ::close(fd);
    LST_CHECK(p != MAP_FAILED, "tap cache '", m_path, "': cannot map ", m_map_bytes,
              " bytes: ", std::strerror(e));
    m_map = static_cast<unsigned char*>(p);
    if (!valid) {
      std::memcpy(m_map, "LSTTAPS1", 8);
      for (int i = 0; i < 8; ++i)
        m_map[8 + i] = static_cast<unsigned char>(std::uint64_t(text.size()) >> (8 * i));
      std::memcpy(m_map + 16, text.data(), text.size());
    }
    m_reused = valid;
    m_filled = m_map + flags_at;
    m_base = m_map + data_at;
  }

  std::vector<std::uint32_t> m_lengths;
  std::vector<index_t> m_taps;
  index_t m_width;
  TapDtype m_dtype;
  std::string m_key;
  Storage m_storage;
  std::string m_path;
  std::vector<std::size_t> m_offsets;  // element offset of each example's block
  std::size_t m_data_bytes = 0;
  Tensor<std::uint8_t> m_ram;
  unsigned char* m_map = nullptr;
  std::size_t m_map_bytes = 0;
  unsigned char* m_base = nullptr;    // the states
  unsigned char* m_filled = nullptr;  // one flag per example
  bool m_reused = false;
};

LST_NAMESPACE_END
