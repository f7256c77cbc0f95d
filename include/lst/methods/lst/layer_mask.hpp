// SPDX-License-Identifier: MIT
/// @file layer_mask.hpp
/// @brief Layer dropping (LST, section 2.3): which backbone layers keep a ladder, a gate and a side block. A
///        dropped layer has none of the three. Each pattern is a type, so it can configure a side network at
///        compile time; ExplicitLayers carries a list chosen at run time.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "../../core/error.hpp"

LST_NAMESPACE_BEGIN

/// Every layer (the paper's default for T5-base ablations).
struct KeepAllLayers {
  static constexpr const char* name = "all";
  static bool keeps(index_t layer, index_t /*num_layers*/) { return layer >= 0; }
};
/// Layers 1, 3, 5, ... (0-based), as the reference keeps for T5-large.
struct KeepOddLayers {
  static constexpr const char* name = "odd";
  static bool keeps(index_t layer, index_t) { return layer % 2 == 1; }
};
/// Drops layers 0, 4, 8, ... (every fourth from the first): 9 of 12 kept, the reference's T5-base choice.
struct DropEveryFourthLayer {
  static constexpr const char* name = "drop-0-4-8";
  static bool keeps(index_t layer, index_t) { return layer % 4 != 0; }
};
/// The last layer only, as the reference's T5-3B runs.
struct KeepLastLayer {
  static constexpr const char* name = "last";
  static bool keeps(index_t layer, index_t num_layers) { return layer == num_layers - 1; }
};
/// Any list of layers, given at run time (SideOptions::layers).
struct ExplicitLayers {
  static constexpr const char* name = "list";
};

/// The kept layers (0-based, ascending) of a `num_layers`-layer backbone under pattern `Mask`; `list` is
/// used by ExplicitLayers only. An empty result, or a listed layer outside the backbone, is an error.
template <class Mask>
std::vector<index_t> kept_layers(index_t num_layers, const std::vector<index_t>& list = {}) {
  std::vector<index_t> kept;
  if constexpr (std::is_same_v<Mask, ExplicitLayers>) {
    for (index_t l : list)
      LST_CHECK(l >= 0 && l < num_layers, "layer mask: layer ", l, " is outside the backbone's 0..",
                num_layers - 1);
    kept = list;
    std::sort(kept.begin(), kept.end());
    kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
  } else {
    for (index_t l = 0; l < num_layers; ++l)
      if (Mask::keeps(l, num_layers)) kept.push_back(l);
  }
  LST_CHECK(!kept.empty(), "layer mask '", Mask::name, "' keeps none of the backbone's ", num_layers,
            " layers");
  return kept;
}

LST_NAMESPACE_END
