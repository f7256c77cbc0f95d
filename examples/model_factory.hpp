// SPDX-License-Identifier: MIT
/// @file model_factory.hpp
/// @brief What lst-finetune and lst-predict share: building a method's TaskModel from run-time choices (LST's
///        templates through one dispatch over a closed set), reading those choices back from a checkpoint's
///        JSON, and the checkpoint directory's tokenizer settings.
#pragma once

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <lst/lst.hpp>
#include <nlohmann/json.hpp>

namespace lst_programs {

using namespace lst;

/// A method and its configuration, as the command line or a checkpoint gives them.
struct MethodOptions {
  std::string method = "full";
  int reduction = 8;
  std::string keep_layers = "all", gate = "before", tap_dtype = "f32", output_gate = "off";
  SideOptions side;
  std::uint64_t seed = 42;
  /// Dropout on the attention probabilities in training: the checkpoint's attention_probs_dropout_prob in the
  /// backbone (full fine-tuning), the side dropout in the side blocks (LST), as Hugging Face and the
  /// reference LST apply them.
  bool attention_dropout = true;
};

/// The layer list of --keep-layers "1,3,5".
inline std::vector<index_t> parse_layer_list(const std::string& text) {
  std::vector<index_t> out;
  std::size_t from = 0;
  while (from <= text.size()) {
    const std::size_t comma = std::min(text.find(',', from), text.size());
    const std::string item = text.substr(from, comma - from);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0)
      throw Error("--keep-layers '" + text + "': '" + item +
                  "' is not a layer index (expected all, odd, drop-0-4-8, last, or a list like 1,3,5)");
    out.push_back(v);
    from = comma + 1;
  }
  return out;
}

template <int R>
std::unique_ptr<TaskModel> make_lst_with_r(const MethodOptions& o, const io::BertConfig& cfg,
                                           const io::SafetensorsFile& weights, index_t outputs) {
  const auto make = [&](auto config, const SideOptions& side) -> std::unique_ptr<TaskModel> {
    using Config = decltype(config);
    return std::make_unique<BertLadderSideTuning<Config>>(cfg, weights, outputs, side, o.seed);
  };
  SideOptions side = o.side;
  side.gate = gate_mode_from_name(o.gate);
  side.tap_dtype = tap_dtype_from_name(o.tap_dtype);
  side.output_gate = output_gate_from_name(o.output_gate);
  side.attention_dropout = o.attention_dropout;
  if (o.keep_layers == "all") return make(LstConfig<R, KeepAllLayers>{}, side);
  if (o.keep_layers == "odd") return make(LstConfig<R, KeepOddLayers>{}, side);
  if (o.keep_layers == "drop-0-4-8") return make(LstConfig<R, DropEveryFourthLayer>{}, side);
  if (o.keep_layers == "last") return make(LstConfig<R, KeepLastLayer>{}, side);
  side.layers = parse_layer_list(o.keep_layers);
  return make(LstConfig<R, ExplicitLayers>{}, side);
}

/// The model of `o.method` on the checkpoint `weights`: full fine-tuning, or LST with r in {2, 4, 8, 16} and
/// any layer pattern (one dispatch over that closed set; anything else is an error naming the choices).
inline std::unique_ptr<TaskModel> make_model(const MethodOptions& o, const io::BertConfig& cfg,
                                             const io::SafetensorsFile& weights, index_t outputs) {
  if (o.method == "full")
    return std::make_unique<BertFullFineTuning>(cfg, weights, outputs, o.seed, o.attention_dropout);
  if (o.method == "lst") {
    switch (o.reduction) {
      case 2:
        return make_lst_with_r<2>(o, cfg, weights, outputs);
      case 4:
        return make_lst_with_r<4>(o, cfg, weights, outputs);
      case 8:
        return make_lst_with_r<8>(o, cfg, weights, outputs);
      case 16:
        return make_lst_with_r<16>(o, cfg, weights, outputs);
      default:
        throw Error("--r " + std::to_string(o.reduction) + " is not one of 2, 4, 8, 16");
    }
  }
  throw Error("--method '" + o.method + "' is not one of: full, lst");
}

/// The options a checkpoint's "model" JSON (TaskModel::config()) records.
inline MethodOptions method_options_from_json(const nlohmann::json& j, const std::string& source) {
  MethodOptions o;
  try {
    o.method = j.at("method").get<std::string>();
    if (o.method == "lst") {
      o.reduction = j.at("r").get<int>();
      o.keep_layers = j.at("keep_layers").get<std::string>();
      o.gate = j.at("gate").get<std::string>();
      o.tap_dtype = j.at("tap_dtype").get<std::string>();
      o.side.heads = j.at("side_heads").get<index_t>();
      o.side.per_channel_gates = j.at("per_channel_gates").get<bool>();
      o.side.ladder_rank = j.at("ladder_rank").get<index_t>();
      o.side.dropout = j.at("side_dropout").get<double>();
      o.side.recompute_attention = j.at("recompute_attention").get<bool>();
      // Absent from checkpoints written before the output gate existed: those had none.
      o.output_gate = j.value("output_gate", std::string("off"));
      o.side.output_gate_init = j.value("output_gate_init", 0.9);
      o.side.mean_pooling = j.value("side_pooling", std::string("cls")) == "mean";
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": the model configuration is incomplete: " + e.what());
  }
  return o;
}

/// do_lower_case from the checkpoint directory's tokenizer_config.json (true when absent, as for BERT's
/// uncased models).
inline bool lower_case_of(const std::string& model_dir) {
  const std::string path = model_dir + "/tokenizer_config.json";
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return true;
  std::string text;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  try {
    return nlohmann::json::parse(text).value("do_lower_case", true);
  } catch (const nlohmann::json::exception& e) {
    throw Error("tokenizer config '" + path + "' is not valid JSON: " + e.what());
  }
}

/// Sentences from `input` (a file, or "-" for stdin), one per line, a tab separating the two sentences of a
/// pair, each encoded by `tokenizer` (anything with WordPieceTokenizer's encode) to at most `max_len` tokens.
/// A line the tokenizer refuses (invalid UTF-8) is an error naming the source and line.
template <class Tokenizer>
std::vector<EncodedExample> read_sentences(const std::string& input, const Tokenizer& tokenizer,
                                           std::size_t max_len) {
  std::ifstream file;
  if (input != "-") {
    file.open(input);
    LST_CHECK(file.good(), "cannot open the input '", input, "'");
  }
  std::istream& in = input == "-" ? std::cin : file;
  std::vector<EncodedExample> examples;
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto tab = line.find('\t');
    const std::string_view a = std::string_view(line).substr(0, tab);
    const std::string_view b =
        tab == std::string::npos ? std::string_view() : std::string_view(line).substr(tab + 1);
    try {
      auto e = tokenizer.encode(a, tab == std::string::npos ? nullptr : &b, max_len);
      examples.push_back({std::move(e.ids), std::move(e.type_ids), -1, 0.0f});
    } catch (const Error& err) {
      lst::detail::raise<Error>(input == "-" ? "stdin" : input, ", line ", n, ": ", err.what());
    }
  }
  return examples;
}

}  // namespace lst_programs
