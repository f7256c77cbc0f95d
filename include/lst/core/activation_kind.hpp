// SPDX-License-Identifier: MIT
/// @file activation_kind.hpp
/// @brief The pointwise activations lst computes, and Hugging Face's names for them.
#pragma once

#include <string>

#include "error.hpp"

LST_NAMESPACE_BEGIN

enum class ActivationKind { relu, gelu, gelu_tanh, tanh, sigmoid };

/// Hugging Face's `hidden_act` names: "gelu" (erf), "gelu_new" / "gelu_pytorch_tanh" (tanh form), "relu", ...
inline ActivationKind activation_from_name(const std::string& name) {
  if (name == "gelu" || name == "gelu_python") return ActivationKind::gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast")
    return ActivationKind::gelu_tanh;
  if (name == "relu") return ActivationKind::relu;
  if (name == "tanh") return ActivationKind::tanh;
  if (name == "sigmoid") return ActivationKind::sigmoid;
  detail::raise<Error>(
      "activation '", name,
      "' is not supported (expected gelu, gelu_new, gelu_pytorch_tanh, relu, tanh or sigmoid)");
}

LST_NAMESPACE_END
