// SPDX-License-Identifier: MIT
/// @file checkpoint.hpp
/// @brief Training checkpoints as one safetensors file each, written atomically: the trainable weights under
///        "<group>/<parameter>", the optimizer state under "optimizer/<group>/<name>", and the loop's state
///        as JSON in the header's metadata ("lst.state"). One file per checkpoint means a crash while saving
///        leaves the previous checkpoint whole.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../io/safetensors.hpp"
#include "../methods/task_model.hpp"

LST_NAMESPACE_BEGIN

/// Named optimizer state tensors (first and second moments, momentum) of one trainable group.
using OptimizerState = std::vector<std::pair<std::string, TensorView<float>>>;

inline constexpr const char* checkpoint_format = "lst-checkpoint-1";

/// Writes `model`'s trainable weights, `optimizer` state (may be empty: a weights-only checkpoint) and
/// `state` (any JSON object; "format" and "identity" are added) to `path`.
inline void save_checkpoint(const std::string& path, TaskModel& model,
                            const std::vector<OptimizerState>& optimizer, nlohmann::json state) {
  std::vector<io::NamedTensor> tensors;
  const auto groups = model.trainable();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const ParameterArena<float>& a = *groups[g];
    for (std::size_t i = 0; i < a.count();
         ++i)  // the trainable parameters: the rest is the pretrained model's
      if (a.trainable(i)) tensors.push_back({a.name() + "/" + a.info(i).name, a.value(i), "F32"});
    if (g < optimizer.size())
      for (const auto& [name, view] : optimizer[g])
        tensors.push_back({"optimizer/" + a.name() + "/" + name, view, "F32"});
  }
  state["format"] = checkpoint_format;
  state["identity"] = model.identity();
  state["model"] = model.config();
  io::save_safetensors(path, tensors, {{"lst.state", state.dump()}});
}

namespace detail {
inline nlohmann::json checkpoint_state(const io::SafetensorsFile& file, const std::string& path) {
  const auto meta = file.metadata();
  const auto it = meta.find("lst.state");
  LST_CHECK(it != meta.end(), "checkpoint '", path, "': no 'lst.state' metadata: not an lst checkpoint");
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    detail::raise<Error>("checkpoint '", path, "': 'lst.state' is not valid JSON: ", e.what());
  }
  LST_CHECK(state.is_object() && state.value("format", "") == checkpoint_format, "checkpoint '", path,
            "': format '", state.is_object() ? state.value("format", "") : "", "', expected '",
            checkpoint_format, "'");
  return state;
}
}  // namespace detail

/// The JSON state of the checkpoint at `path` (what save_checkpoint was given, with "format", "identity" and
/// "model"), read without touching any model: a loop checks its settings against it before loading.
inline nlohmann::json read_checkpoint_state(const std::string& path) {
  const io::SafetensorsFile file(path);
  return detail::checkpoint_state(file, path);
}

/// Reads a checkpoint written by save_checkpoint into `model` (and `optimizer`, unless empty) and returns
/// its state. A checkpoint of another method, configuration or backbone is refused, naming both identities;
/// a missing or mis-shaped tensor is an error naming it. Nothing is modified unless every check passes.
inline nlohmann::json load_checkpoint(const std::string& path, TaskModel& model,
                                      const std::vector<OptimizerState>& optimizer) {
  const io::SafetensorsFile file(path);
  const nlohmann::json state = detail::checkpoint_state(file, path);
  const std::string identity = state.value("identity", "");
  LST_CHECK(identity == model.identity(), "checkpoint '", path, "' was written by\n  ", identity,
            "\nbut this model is\n  ", model.identity(), "\n(another method, configuration or backbone)");
  // Check every tensor before reading any, so a bad file leaves the model as it was.
  std::vector<std::pair<std::string, TensorView<float>>> reads;
  const auto groups = model.trainable();
  for (std::size_t g = 0; g < groups.size(); ++g) {
    const ParameterArena<float>& a = *groups[g];
    for (std::size_t i = 0; i < a.count(); ++i)
      if (a.trainable(i)) reads.emplace_back(a.name() + "/" + a.info(i).name, a.value(i));
    if (g < optimizer.size())
      for (const auto& [name, view] : optimizer[g])
        reads.emplace_back("optimizer/" + a.name() + "/" + name, view);
  }
  for (const auto& [name, view] : reads) {
    const io::SafetensorsEntry* e = file.find(name);
    LST_CHECK(e != nullptr, "checkpoint '", path, "': no tensor '", name, "'");
    LST_CHECK(index_t(e->shape.size()) == view.rank() &&
                  std::equal(e->shape.begin(), e->shape.end(), view.shape().dims.begin()),
              "checkpoint '", path, "': tensor '", name, "' has shape ", io::detail::shape_string(e->shape),
              ", expected ", view.shape());
  }
  for (const auto& [name, view] : reads) file.read(name, view);
  return state;
}

LST_NAMESPACE_END
