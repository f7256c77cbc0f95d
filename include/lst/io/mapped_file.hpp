// SPDX-License-Identifier: MIT
/// @file mapped_file.hpp
/// @brief A read-only memory map of a whole file (POSIX), and atomic file replacement (temp file + rename).
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <utility>

#include "../core/error.hpp"

LST_NAMESPACE_BEGIN
namespace io {

/// Maps a file read-only. Pages are loaded on first touch and shared with the page cache, so a checkpoint's
/// frozen weights cost no copy and no anonymous memory until read.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(std::string path) : m_path(std::move(path)) {
    const int fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) detail::raise<Error>("cannot open '", m_path, "': ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      const int err = errno;
      ::close(fd);
      detail::raise<Error>("'", m_path, "' is not a readable regular file", err ? ": " : "",
                           err ? std::strerror(err) : "");
    }
    m_size = static_cast<std::size_t>(st.st_size);
    if (m_size > 0) {
      void* p = ::mmap(nullptr, m_size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        detail::raise<Error>("cannot map '", m_path, "' (", m_size, " bytes): ", std::strerror(err));
      }
      m_data = static_cast<const unsigned char*>(p);
    }
    ::close(fd);  // the mapping keeps the file alive
  }
  MappedFile(MappedFile&& o) noexcept
      : m_path(std::move(o.m_path)),
        m_data(std::exchange(o.m_data, nullptr)),
        m_size(std::exchange(o.m_size, 0)) {}
  MappedFile& operator=(MappedFile&& o) noexcept {
    if (this != &o) {
      unmap();
      m_path = std::move(o.m_path);
      m_data = std::exchange(o.m_data, nullptr);
      m_size = std::exchange(o.m_size, 0);
    }
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() { unmap(); }

  const unsigned char* data() const noexcept { return m_data; }
  std::size_t size() const noexcept { return m_size; }
  const std::string& path() const noexcept { return m_path; }

 private:
  void unmap() noexcept {
    if (m_data) ::munmap(const_cast<unsigned char*>(m_data), m_size);
    m_data = nullptr;
  }
  std::string m_path;
  const unsigned char* m_data = nullptr;
  std::size_t m_size = 0;
};

/// Replaces `path` atomically: `write(FILE*)` fills a temporary file in the same directory, which is flushed,
/// fsync'ed and renamed over `path`. A crash or an exception at any point leaves the old file intact (and no
/// temporary behind, except after a crash).
inline void write_file_atomically(const std::string& path, const std::function<void(std::FILE*)>& write) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) detail::raise<Error>("cannot create '", tmp, "': ", std::strerror(errno));
  try {
    write(f);
    if (std::fflush(f) != 0 || ::fsync(::fileno(f)) != 0)
      detail::raise<Error>("cannot write '", tmp, "': ", std::strerror(errno));
  } catch (...) {
    std::fclose(f);
    std::remove(tmp.c_str());
    throw;
  }
  if (std::fclose(f) != 0) {
    std::remove(tmp.c_str());
    detail::raise<Error>("cannot close '", tmp, "': ", std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    detail::raise<Error>("cannot rename '", tmp, "' to '", path, "': ", std::strerror(err));
  }
}

/// fwrite that raises on a short write (disk full), naming the file.
inline void write_bytes(std::FILE* f, const void* data, std::size_t n, const std::string& what) {
  if (n && std::fwrite(data, 1, n, f) != n)
    detail::raise<Error>("short write to ", what, ": ", std::strerror(errno));
}

}  // namespace io
LST_NAMESPACE_END
