// SPDX-License-Identifier: MIT
/// @file lst_config.hpp
/// @brief Ladder Side-Tuning's configuration: what shapes the code (the reduction factor r, the layer-drop
///        pattern, the gate temperature, the scalar type) is a compile-time LstConfig; the rest is run-time
///        SideOptions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ratio>
#include <string>
#include <type_traits>
#include <vector>

#include "../../core/dtype.hpp"
#include "../../core/error.hpp"
#include "../../ops/half.hpp"
#include "layer_mask.hpp"

LST_NAMESPACE_BEGIN

/// r = `Reduction` (side width d / r, side FFN width d_ff / r), kept layers by `LayerMask`, gate temperature
/// `GateTemperature` (a std::ratio; the paper's T = 0.1), parameters in `Scalar`.
template <int Reduction, class LayerMask = KeepAllLayers, class GateTemperature = std::ratio<1, 10>,
          class Scalar = float>
struct LstConfig {
  static_assert(Reduction >= 1, "LST: the reduction factor r must be at least 1");
  static_assert(GateTemperature::num > 0 && GateTemperature::den > 0,
                "LST: the gate temperature must be > 0");
  static constexpr index_t reduction = Reduction;
  using layer_mask = LayerMask;
  using scalar = Scalar;
  static constexpr double gate_temperature = double(GateTemperature::num) / double(GateTemperature::den);
};

/// How ladder and side state meet at a kept layer (the reference's variants, section 2.2 and its code).
enum class GateMode {
  before,  ///< s = mu s + (1 - mu) down(h), then the side block (the paper's default)
  after,   ///< s = mu block(s) + (1 - mu) down(h)
  sum,     ///< s = s + down(h), then the block: no gate
  none,    ///< no ladder input after the embeddings (gate fixed to 1)
};

inline GateMode gate_mode_from_name(const std::string& name) {
  if (name == "before") return GateMode::before;
  if (name == "after") return GateMode::after;
  if (name == "sum") return GateMode::sum;
  if (name == "none") return GateMode::none;
  detail::raise<Error>("gate mode '", name, "' is not one of before, after, sum, none");
}
inline const char* to_string(GateMode g) {
  switch (g) {
    case GateMode::before:
      return "before";
    case GateMode::after:
      return "after";
    case GateMode::sum:
      return "sum";
    default:
      return "none";
  }
}

/// QST's output gate (Zhang et al. 2024, arXiv 2401.07159, section 3.3) adapted to a sentence classifier: the
/// features fed to the head become beta h + (1 - beta) up(s) with beta = sigmoid(gamma / T) learned and
/// started biased toward the backbone, h the backbone's final state pooled at [CLS] (`cls`) or averaged over
/// the real tokens (`mean`, sentence-transformers' pooling). `off` is the LST paper: the head sees up(s)
/// only.
enum class OutputGate { off, cls, mean };
inline OutputGate output_gate_from_name(const std::string& name) {
  if (name == "off") return OutputGate::off;
  if (name == "cls") return OutputGate::cls;
  if (name == "mean") return OutputGate::mean;
  detail::raise<Error>("output gate '", name, "' is not one of off, cls, mean");
}
inline const char* to_string(OutputGate g) {
  return g == OutputGate::off ? "off" : g == OutputGate::cls ? "cls" : "mean";
}

/// Storage type of the saved ladder inputs (the only backbone states LST keeps for backward).
enum class TapDtype { f32, f16, bf16 };
inline TapDtype tap_dtype_from_name(const std::string& name) {
  if (name == "f32") return TapDtype::f32;
  if (name == "f16") return TapDtype::f16;
  if (name == "bf16") return TapDtype::bf16;
  detail::raise<Error>("tap dtype '", name, "' is not one of f32, f16, bf16");
}
inline const char* to_string(TapDtype t) {
  return t == TapDtype::f32 ? "f32" : t == TapDtype::f16 ? "f16" : "bf16";
}

/// n values of T into half-width storage `dtype` (f16 or bf16): the bulk conversions of ops/half.hpp for
/// float, element by element through float for other types (double in gradient checks).
template <class T>
void to_half_storage(TapDtype dtype, const T* in, std::uint16_t* out, std::size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (dtype == TapDtype::f16)
      floats_to_f16(in, out, n);
    else
      floats_to_bf16(in, out, n);
  } else {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = dtype == TapDtype::f16 ? to_f16(float(in[i])).bits : to_bf16(float(in[i])).bits;
  }
}
/// The inverse of to_half_storage().
template <class T>
void from_half_storage(TapDtype dtype, const std::uint16_t* in, T* out, std::size_t n) {
  if constexpr (std::is_same_v<T, float>) {
    if (dtype == TapDtype::f16)
      f16_to_floats(in, out, n);
    else
      bf16_to_floats(in, out, n);
  } else {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = T(dtype == TapDtype::f16 ? to_float(f16{in[i]}) : to_float(bf16{in[i]}));
  }
}

struct SideOptions {
  index_t heads = 0;  ///< side attention heads; 0 = the backbone's count (the reference)
  GateMode gate = GateMode::before;
  bool per_channel_gates = false;   ///< one alpha per side channel (QST) instead of one per layer
  index_t ladder_rank = 0;          ///< 0: dense ladders d -> d/r; k > 0: low rank d -> k -> d/r (QST)
  bool recompute_attention = true;  ///< side attention probabilities recomputed in backward, not stored
  double dropout =
      0.1;  ///< in the side blocks, on the embeddings before the first ladder, after the final LayerNorm
  /// Dropout on the side blocks' attention probabilities at the rate `dropout`, as the reference's side T5
  /// blocks apply their dropout rate to the attention weights; false turns it off.
  bool attention_dropout = true;
  TapDtype tap_dtype = TapDtype::f32;
  OutputGate output_gate = OutputGate::off;
  bool mean_pooling = false;  ///< the head reads the side state averaged over real tokens, not at [CLS]
  /// With [CLS] pooling the head reads one row of the last side block's output: the block computes that row
  /// alone (its keys and values still cover every token). The same function to rounding; off for comparison.
  bool cls_only_last_block = true;
  double output_gate_init = 0.9;  ///< beta at init (the share of the backbone's state), in (0, 1)
  std::vector<index_t> layers;    ///< the kept layers for ExplicitLayers
  /// A training batch's sequences run through the side network in this many shards of about equal token
  /// counts, each forward and backward on its own thread with its own gradients, summed in shard order
  /// (BertLadderSideTuning::train_step): one parallel region per pass instead of one per product, whose
  /// fork and join cost more than the side network's small products. The forward values are the unsharded
  /// pass's row by row (bit for bit where every product gives a row the same bits whatever the row count, as
  /// the packing-free GEMM does); the gradients are sums in another order. Results depend on this count and
  /// never on the thread count; threads beyond it leave the side network alone (the backbone uses them all).
  /// Not part of the model: a checkpoint trained with one count resumes with any.
  index_t training_shards = 2;
};

LST_NAMESPACE_END
