// SPDX-License-Identifier: MIT
/// @file shuffle.hpp
/// @brief The example order of one epoch, a pure function of (seed, epoch): a resumed run sees exactly the
///        order the interrupted one would have seen, without saving the order itself.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/random.hpp"

LST_NAMESPACE_BEGIN

/// A Fisher-Yates permutation of 0..n-1 drawn from a generator seeded with (seed, epoch).
inline std::vector<std::uint32_t> epoch_permutation(std::size_t n, std::uint64_t seed, std::uint64_t epoch) {
  LST_CHECK(n < (std::size_t(1) << 32), "epoch_permutation: ", n, " examples exceed 2^32");
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), std::uint32_t(0));
  Rng rng(mix64(seed ^ mix64(epoch + 0x9E3779B97F4A7C15ull)));
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.below(std::uint32_t(i))]);
  return order;
}

LST_NAMESPACE_END

LST_NAMESPACE_BEGIN

/// The batches of one epoch, each a list of example rows, a pure function of (lengths, batch size, seed,
/// epoch). With `group_by_length`, the shuffled order is cut into windows of 50 batches, each window is
/// sorted by length and cut into batches, and the batch order is shuffled again: batches hold examples of
/// similar length, so dynamic padding wastes little compute, while every epoch still sees a fresh random mix
/// (Hugging Face's group_by_length does the same with windows of 50). Without it, consecutive slices of the
/// shuffled order.
inline std::vector<std::vector<std::uint32_t>> epoch_batches(const std::vector<std::uint32_t>& lengths,
                                                             std::size_t batch_size, std::uint64_t seed,
                                                             std::uint64_t epoch, bool group_by_length) {
  LST_CHECK(batch_size > 0, "epoch_batches: batch size must be positive");
  std::vector<std::uint32_t> order = epoch_permutation(lengths.size(), seed, epoch);
  if (group_by_length) {
    const std::size_t window = batch_size * 50;
    for (std::size_t first = 0; first < order.size(); first += window) {
      const auto begin = order.begin() + std::ptrdiff_t(first);
      const auto end = order.begin() + std::ptrdiff_t(std::min(order.size(), first + window));
      std::stable_sort(begin, end, [&](std::uint32_t a, std::uint32_t b) { return lengths[a] > lengths[b]; });
    }
  }
  std::vector<std::vector<std::uint32_t>> batches;
  for (std::size_t first = 0; first < order.size(); first += batch_size)
    batches.emplace_back(order.begin() + std::ptrdiff_t(first),
                         order.begin() + std::ptrdiff_t(std::min(order.size(), first + batch_size)));
  if (group_by_length) {
    const std::vector<std::uint32_t> shuffled = epoch_permutation(batches.size(), ~seed, epoch);
    std::vector<std::vector<std::uint32_t>> out(batches.size());
    for (std::size_t i = 0; i < batches.size(); ++i) out[i] = std::move(batches[shuffled[i]]);
    return out;
  }
  return batches;
}

LST_NAMESPACE_END
