// SPDX-License-Identifier: MIT
/// @file backbone_shape.hpp
/// @brief The shape of a pretrained transformer encoder, whatever its family: what a method built beside or
///        inside the backbone (the LST side network, adapters) needs to know of it.
#pragma once

#include "../core/activation_kind.hpp"
#include "../io/bert_config.hpp"

LST_NAMESPACE_BEGIN

/// Widths, depth and the block's kind of a transformer encoder. A BERT-family `config.json` converts to it;
/// another family (T5) adds its own conversion.
struct BackboneShape {
  index_t width = 0;      // d, the residual stream
  index_t ffn_width = 0;  // d_ff
  index_t heads = 0;
  index_t layers = 0;
  double norm_eps = 1e-12;
  ActivationKind activation = ActivationKind::gelu;

  BackboneShape() = default;
  BackboneShape(index_t width_, index_t ffn_width_, index_t heads_, index_t layers_, double norm_eps_,
                ActivationKind activation_)
      : width(width_),
        ffn_width(ffn_width_),
        heads(heads_),
        layers(layers_),
        norm_eps(norm_eps_),
        activation(activation_) {}
  /// A BERT-family configuration's shape (implicit: a BertConfig stands wherever a shape is asked for).
  BackboneShape(const io::BertConfig& c)  // NOLINT(google-explicit-constructor)
      : BackboneShape(c.hidden_size, c.intermediate_size, c.num_attention_heads, c.num_hidden_layers,
                      c.layer_norm_eps, c.activation()) {}
};

LST_NAMESPACE_END
