// SPDX-License-Identifier: MIT
/// @file glue.hpp
/// @brief GLUE task files (Wang et al. 2018) in their original TSV layouts: SST-2, CoLA, MRPC, RTE, STS-B,
/// QNLI.
///
/// Files are read as UTF-8, tab-separated, with no quote processing (several sentences start with `"`), as
/// the GLUE loaders read them. A malformed row is an error naming the file and the line.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "../core/error.hpp"

LST_NAMESPACE_BEGIN
namespace io {

enum class GlueTask { sst2, cola, mrpc, rte, stsb, qnli };

struct GlueExample {
  std::string text_a, text_b;  // text_b empty for single-sentence tasks
  std::int32_t label = -1;     // class index; -1 for STS-B
  float score = 0.0f;          // STS-B similarity in [0, 5]
};

struct GlueDataset {
  GlueTask task;
  std::string path;
  std::vector<GlueExample> examples;
};

/// The task's layout: directory, header or not, column count, text columns, label column.
struct GlueLayout {
  const char* name;  // the directory name in the GLUE distribution
  bool header;
  std::size_t columns;
  int text_a, text_b;  // text_b = -1 for single sentences
  int label;
  int num_labels;  // 0 = regression
};

inline GlueLayout glue_layout(GlueTask t) {
  switch (t) {
    case GlueTask::sst2:
      return {"SST-2", true, 2, 0, -1, 1, 2};
    case GlueTask::cola:
      return {"CoLA", false, 4, 3, -1, 1, 2};
    case GlueTask::mrpc:
      return {"MRPC", true, 5, 3, 4, 0, 2};
    case GlueTask::rte:
      return {"RTE", true, 4, 1, 2, 3, 2};
    case GlueTask::stsb:
      return {"STS-B", true, 10, 7, 8, 9, 0};
    case GlueTask::qnli:
      return {"QNLI", true, 4, 1, 2, 3, 2};
  }
  return {"?", false, 0, 0, -1, 0, 0};
}

/// "sst2", "SST-2", "sst-2" ... -> the task; anything else is an error listing the valid names.
inline GlueTask glue_task_from_name(std::string name) {
  std::string key;
  for (char c : name)
    if (c != '-' && c != '_') key += char(std::tolower(static_cast<unsigned char>(c)));
  if (key == "sst2") return GlueTask::sst2;
  if (key == "cola") return GlueTask::cola;
  if (key == "mrpc") return GlueTask::mrpc;
  if (key == "rte") return GlueTask::rte;
  if (key == "stsb") return GlueTask::stsb;
  if (key == "qnli") return GlueTask::qnli;
  lst::detail::raise<Error>("unknown GLUE task '", name, "' (expected sst2, cola, mrpc, rte, stsb or qnli)");
}

/// The data directory: $LST_GLUE_DIR, else ../shared/data/glue (the project's shared data, seen from its
/// root).
inline std::string default_glue_dir() {
  const char* env = std::getenv("LST_GLUE_DIR");
  return env && *env ? env : "../shared/data/glue";
}

/// Parses one task file's text; `path` names it in errors.
inline GlueDataset parse_glue(GlueTask task, const std::string& text, const std::string& path) {
  const GlueLayout l = glue_layout(task);
  GlueDataset d{task, path, {}};
  std::size_t line_no = 0, start = 0;
  auto fail = [&](const std::string& what) {
    lst::detail::raise<Error>("GLUE ", l.name, " file '", path, "', line ", line_no, ": ", what);
  };
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();  // CoLA's dev file has no final newline
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // MRPC's BOM
    if (line_no == 1 && l.header) continue;
    std::vector<std::string> cols;
    std::size_t from = 0;
    for (std::size_t tab; (tab = line.find('\t', from)) != std::string::npos; from = tab + 1)
      cols.push_back(line.substr(from, tab - from));
    cols.push_back(line.substr(from));
    if (cols.size() != l.columns)
      fail(std::to_string(cols.size()) + " tab-separated fields, expected " + std::to_string(l.columns));
    GlueExample e;
    e.text_a = cols[std::size_t(l.text_a)];
    if (l.text_b >= 0) e.text_b = cols[std::size_t(l.text_b)];
    const std::string& label = cols[std::size_t(l.label)];
    if (task == GlueTask::stsb) {
      char* stop = nullptr;
      e.score = std::strtof(label.c_str(), &stop);
      if (label.empty() || *stop != '\0' || !(e.score >= 0.0f && e.score <= 5.0f))
        fail("score '" + label + "' is not a number in [0, 5]");
    } else if (task == GlueTask::rte || task == GlueTask::qnli) {
      if (label == "entailment")
        e.label = 0;
      else if (label == "not_entailment")
        e.label = 1;
      else
        fail("label '" + label + "' is neither 'entailment' nor 'not_entailment'");
    } else {
      if (label == "0")
        e.label = 0;
      else if (label == "1")
        e.label = 1;
      else
        fail("label '" + label + "' is neither 0 nor 1");
    }
    d.examples.push_back(std::move(e));
  }
  if (d.examples.empty()) lst::detail::raise<Error>("GLUE ", l.name, " file '", path, "': no examples");
  return d;
}

/// Loads `split` ("train" or "dev") of `task` from `data_dir` (default_glue_dir()).
inline GlueDataset load_glue(GlueTask task, const std::string& split,
                             const std::string& data_dir = default_glue_dir()) {
  LST_CHECK(split == "train" || split == "dev", "GLUE split '", split, "' is neither 'train' nor 'dev'");
  const std::string path = data_dir + "/" + glue_layout(task).name + "/" + split + ".tsv";
  std::ifstream f(path, std::ios::binary);
  if (!f) lst::detail::raise<Error>("GLUE file '", path, "': cannot open (set LST_GLUE_DIR or --data)");
  std::ostringstream text;
  text << f.rdbuf();
  return parse_glue(task, text.str(), path);
}

}  // namespace io
LST_NAMESPACE_END
