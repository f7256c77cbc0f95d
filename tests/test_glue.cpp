// SPDX-License-Identifier: MIT
// The shared GLUE files (../shared/data/glue, or $LST_GLUE_DIR), and broken files written here.
#include <lst/io/glue.hpp>

#include "gradient_check.hpp"

using namespace lst;
using io::GlueTask;

namespace {
std::string glue_dir() {
  const char* env = std::getenv("LST_GLUE_DIR");
  return env && *env ? env : LST_SOURCE_DIR "/../shared/data/glue";
}
}  // namespace

TEST_CASE("Every shared GLUE file loads with the official row counts and label balance") {
  struct Expect {
    GlueTask task;
    const char* split;
    std::size_t rows;
    std::size_t positives;  // label 1 (not_entailment for RTE/QNLI); unused for STS-B
  };
  const Expect expected[] = {{GlueTask::sst2, "train", 67349, 37569}, {GlueTask::sst2, "dev", 872, 444},
                             {GlueTask::rte, "train", 2490, 1241},    {GlueTask::rte, "dev", 277, 131},
                             {GlueTask::mrpc, "train", 3668, 2474},   {GlueTask::mrpc, "dev", 408, 279},
                             {GlueTask::cola, "train", 8551, 6023},   {GlueTask::cola, "dev", 1043, 721},
                             {GlueTask::stsb, "train", 5749, 0},      {GlueTask::stsb, "dev", 1500, 0},
                             {GlueTask::qnli, "dev", 5463, 2761}};
  for (const Expect& e : expected) {
    const io::GlueDataset d = io::load_glue(e.task, e.split, glue_dir());
    CAPTURE(d.path);
    CHECK(d.examples.size() == e.rows);
    std::size_t pos = 0;
    for (const auto& x : d.examples) pos += x.label == 1;
    if (e.task != GlueTask::stsb) CHECK(pos == e.positives);
    const bool pair = e.task == GlueTask::rte || e.task == GlueTask::mrpc || e.task == GlueTask::stsb ||
                      e.task == GlueTask::qnli;
    CHECK(d.examples.front().text_b.empty() == !pair);
  }
  const auto mrpc = io::load_glue(GlueTask::mrpc, "dev", glue_dir());
  CHECK(mrpc.examples.front().text_a.rfind("He said the foodservice pie business", 0) ==
        0);  // BOM header skipped
  const auto stsb = io::load_glue(GlueTask::stsb, "dev", glue_dir());
  CHECK(stsb.examples.front().score == doctest::Approx(5.0f));
}

TEST_CASE("Broken GLUE rows are errors naming the file and the line") {
  auto err = [](GlueTask t, const std::string& text) {
    return lst_test::error_of([&] { io::parse_glue(t, text, "x/dev.tsv"); });
  };
  std::string m = err(GlueTask::sst2, "sentence\tlabel\ngood movie\t1\nbad movie\t7\n");
  CHECK(m.find("x/dev.tsv") != std::string::npos);
  CHECK(m.find("line 3") != std::string::npos);
  CHECK(m.find("'7'") != std::string::npos);
  CHECK(err(GlueTask::rte, "h\th\th\th\n1\ta\tb\tcontradiction\n").find("contradiction") !=
        std::string::npos);
  CHECK(err(GlueTask::cola, "src\t1\t\tok\nsrc\t1\tonly three\n").find("line 2") != std::string::npos);
  CHECK(err(GlueTask::stsb, "h\th\th\th\th\th\th\th\th\th\n0\tg\tf\ty\t0\ta\tb\ts1\ts2\tsix\n").find("six") !=
        std::string::npos);
  CHECK(err(GlueTask::sst2, "sentence\tlabel\n").find("no examples") != std::string::npos);
  CHECK(lst_test::error_of([] {
          io::load_glue(GlueTask::rte, "train", "/nonexistent");
        }).find("/nonexistent/RTE") != std::string::npos);
  CHECK_THROWS_AS(io::glue_task_from_name("mnli"), Error);
  CHECK(io::glue_task_from_name("STS-B") == GlueTask::stsb);
}
