// SPDX-License-Identifier: MIT
/// @file site.hpp
/// @brief Insertion points of a transformer encoder: the places where a parameter-efficient method modifies
///        the computation, h <- h + delta(x, h) (He et al. 2022, "Towards a Unified View of
///        Parameter-Efficient Transfer Learning", section 3).
///
/// A method registers a SiteModule at a site of a layer; the layer calls it there, forward and backward. A
/// layer with nothing registered runs its own code path unchanged. Sites and what `x` is at each:
///
///   embeddings   the embeddings' output (after their LayerNorm and dropout); x is h itself
///   query, key, value, attention_output_projection
///                a projection's output (N, C); x its input: LoRA on W_q and W_v (Hu et al. 2021)
///   attention    the attention sub-layer's output, after its dropout and before the residual add and
///                LayerNorm; x the sub-layer's input: Houlsby adapters (sequential, from h) and parallel
///                adapters (from x)
///   ffn          the feed-forward sub-layer's output, likewise; x the FFN's input
///
/// Prefix keys and values (prefix tuning) enter through PrefixKV (nn/attention.hpp), which the encoder layer
/// takes per layer (EncoderLayer::set_prefix).
#pragma once

#include <cstdint>
#include <memory>

#include "../core/tensor.hpp"

LST_NAMESPACE_BEGIN

enum class Site { embeddings, query, key, value, attention_output_projection, attention, ffn };
inline constexpr int site_count = 7;

inline const char* to_string(Site s) {
  switch (s) {
    case Site::embeddings:
      return "embeddings";
    case Site::query:
      return "query";
    case Site::key:
      return "key";
    case Site::value:
      return "value";
    case Site::attention_output_projection:
      return "attention_output_projection";
    case Site::attention:
      return "attention";
    case Site::ffn:
      break;
  }
  return "ffn";
}

/// What a module's forward keeps for its backward (a module derives its own).
struct SiteContext {
  virtual ~SiteContext() = default;
};

/// A modification at a site: h <- h + delta(x, h), computed in place.
template <class T, class Backend = Cpu>
class SiteModule {
 public:
  virtual ~SiteModule() = default;
  /// h (N, C_out) becomes h + delta(x, h); x (N, C_in) is the site's input (see the list above). Training
  /// mode returns what backward needs (null is allowed when it needs nothing); `step` drives any dropout.
  virtual std::unique_ptr<SiteContext> forward(ConstView<T, Backend> x, TensorView<T, Backend> h, Mode mode,
                                               std::uint64_t step) const = 0;
  /// On entry dh holds dL/d(h after the module); on return dL/d(h before it). dx (N, C_in), when not empty,
  /// gets dL/dx through delta *added* to it. The module's own parameter gradients follow `gm`.
  virtual void backward(const SiteContext* ctx, TensorView<T, Backend> dh, TensorView<T, Backend> dx,
                        GradMode gm) const = 0;
};

/// The modules registered at each site of one layer.
template <class T, class Backend = Cpu>
class SiteModules {
 public:
  using Module = std::shared_ptr<const SiteModule<T, Backend>>;
  /// Registers `module` at `site` (one module a site; null removes it).
  void attach(Site site, Module module) { m_modules[int(site)] = std::move(module); }
  const SiteModule<T, Backend>* at(Site site) const { return m_modules[int(site)].get(); }

 private:
  Module m_modules[site_count];
};

LST_NAMESPACE_END
