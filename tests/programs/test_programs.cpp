// SPDX-License-Identifier: MIT
/// @file test_programs.cpp
/// @brief The installed programs end to end, on a tiny random checkpoint directory and a tiny GLUE directory:
///        lst-finetune writes metrics.json and resumes, lst-encode writes what it promises, and bad input
///        gets exit status 1 with a message naming the file.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gradient_check.hpp"
#include "tiny_model.hpp"

using namespace lst;

namespace {

struct Result {
  int status;
  std::string output;  // stdout and stderr together
};

Result run(const std::string& program, const std::string& args, const std::string& scratch) {
  const std::string log = scratch + "/program.log";
  const std::string cmd = std::string(LST_PROGRAM_DIR) + "/" + program + " " + args + " > " + log + " 2>&1";
  const int raw = std::system(cmd.c_str());
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, text.str()};
}

void write_tiny_sst2(const std::string& glue_dir) {
  std::filesystem::create_directories(glue_dir + "/SST-2");
  const char* good[] = {"good movie", "very good", "fun plot", "the movie was fun", "good fun !"};
  const char* bad[] = {"bad movie", "very bad", "boring plot", "the movie was boring", "bad . boring"};
  for (const char* split : {"train", "dev"}) {
    std::ofstream f(glue_dir + "/SST-2/" + split + ".tsv");
    f << "sentence\tlabel\n";
    for (int rep = 0; rep < (std::string(split) == "train" ? 4 : 1); ++rep)
      for (int i = 0; i < 5; ++i) f << good[i] << " \t1\n" << bad[i] << " \t0\n";
  }
}

}  // namespace

TEST_CASE("lst-finetune trains, reports, writes metrics.json and resumes a finished run") {
  lst_test::TempDir dir("finetune");
  lst_test::write_tiny_model_dir(dir / "model");
  write_tiny_sst2(dir / "glue");
  const std::string args = "--model " + (dir / "model") + " --task sst2 --data " + (dir / "glue") +
                           " --out " + (dir / "out") +
                           " --epochs 2 --batch-size 4 --lr 1e-3 --max-seq-len 12 --no-progress";
  const Result r = run("lst-finetune", args, dir.path.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("lst memory (peak over the run)") != std::string::npos);
  CHECK(r.output.find("process peak RSS") != std::string::npos);
  std::ifstream in(dir / "out/metrics.json");
  const auto m = nlohmann::json::parse(in);
  CHECK(m.at("task") == "SST-2");
  CHECK(m.at("method") == "full");
  CHECK(m.at("steps") == 20);  // 2 epochs of 40 / 4
  CHECK(m.at("dev").contains("accuracy"));
  CHECK(m.at("trainable_parameters") == m.at("total_parameters"));
  CHECK(m.at("peak_bytes").at("weights").get<double>() > 0);
  CHECK(m.at("peak_bytes").at("optimizer") == 2 * m.at("peak_bytes").at("weights").get<double>());
  for (const char* f : {"log.jsonl", "best.safetensors", "last.safetensors"})
    CHECK(std::filesystem::exists(dir / ("out/" + std::string(f))));

  const Result again = run("lst-finetune", args, dir.path.string());  // finished: resumes at the end
  INFO(again.output);
  CHECK(again.status == 0);
  std::ifstream in2(dir / "out/metrics.json");
  const auto m2 = nlohmann::json::parse(in2);
  CHECK(m2.at("resumed_from_step") == 20);
  CHECK(m2.at("dev").at("accuracy") == m.at("dev").at("accuracy"));
}

TEST_CASE(
    "lst-finetune --method lst trains the side network with a disk tap cache that a second run reuses") {
  lst_test::TempDir dir("finetune_lst");
  lst_test::write_tiny_model_dir(dir / "model");
  write_tiny_sst2(dir / "glue");
  const std::string base = "--model " + (dir / "model") + " --task sst2 --data " + (dir / "glue") +
                           " --epochs 2 --batch-size 4 --max-seq-len 12 --no-progress --method lst"
                           " --init magnitude --cache-taps disk --tap-dtype f16 --tap-cache-file " +
                           (dir / "taps.cache");
  const std::string args = base + " --r 2";
  Result r = run("lst-finetune", args + " --out " + (dir / "a"), dir.path.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("built during the first epoch") != std::string::npos);
  std::ifstream in(dir / "a/metrics.json");
  const auto m = nlohmann::json::parse(in);
  CHECK(m.at("method") == "lst");
  CHECK(m.at("trainable_parameters").get<double>() < m.at("total_parameters").get<double>());
  CHECK(m.at("peak_bytes").at("gradients").get<double>() < m.at("peak_bytes").at("weights").get<double>());
  // Another run on the same data and taps, with QST's output gate: the cache is reused.
  r = run("lst-finetune", args + " --output-gate mean --side-pooling mean --out " + (dir / "b"),
          dir.path.string());
  CHECK(r.status == 0);
  CHECK(r.output.find("reused (its key matches)") != std::string::npos);
  CHECK(r.output.find("output_gate=mean") != std::string::npos);
  CHECK(r.output.find("pooling=mean") != std::string::npos);
  // lst-predict rebuilds the side network from the checkpoint alone and labels sentences from a file.
  std::ofstream(dir / "sentences.txt") << "good fun !\nbad boring plot\n";
  r = run("lst-predict",
          "--model " + (dir / "model") + " --checkpoint " + (dir / "a/best.safetensors") + " --input " +
              (dir / "sentences.txt") + " --max-seq-len 12",
          dir.path.string());
  CHECK(r.status == 0);
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 2);
  CHECK((r.output.rfind("positive\t", 0) == 0 || r.output.rfind("negative\t", 0) == 0));
  r = run("lst-predict",
          "--model " + (dir / "model") + " --checkpoint " + (dir / "b/best.safetensors") + " --input " +
              (dir / "sentences.txt") + " --max-seq-len 12",
          dir.path.string());
  CHECK(r.status == 0);  // the output gate's configuration travels in the checkpoint
  CHECK(std::count(r.output.begin(), r.output.end(), '\n') == 2);
  r = run("lst-finetune", base + " --output-gate max --out " + (dir / "d"), dir.path.string());
  CHECK(r.status == 1);
  CHECK(r.output.find("output gate 'max' is not one of off, cls, mean") != std::string::npos);
  lst_test::write_tiny_checkpoint(dir / "model/model.safetensors", 99);  // same shapes, other weights
  r = run("lst-predict",
          "--model " + (dir / "model") + " --checkpoint " + (dir / "a/best.safetensors") + " --input " +
              (dir / "sentences.txt") + " --max-seq-len 12",
          dir.path.string());
  CHECK(r.status == 1);
  r = run("lst-finetune", base + " --out " + (dir / "c") + " --r 3", dir.path.string());
  CHECK(r.status == 1);
  CHECK(r.output.find("is not one of 2, 4, 8, 16") != std::string::npos);
}

TEST_CASE("lst-finetune refuses bad input with exit status 1 and a message naming what is wrong") {
  lst_test::TempDir dir("finetune_bad");
  lst_test::write_tiny_model_dir(dir / "model");
  write_tiny_sst2(dir / "glue");
  const std::string base = "--model " + (dir / "model") + " --data " + (dir / "glue") + " --out " +
                           (dir / "out") + " --max-seq-len 12";
  Result r = run("lst-finetune", base + " --task nope", dir.path.string());
  CHECK(r.status == 1);
  CHECK(r.output.find("nope") != std::string::npos);
  r = run("lst-finetune", base + " --task sst2 --method nope", dir.path.string());
  CHECK(r.status == 1);
  CHECK(r.output.find("is not one of") != std::string::npos);
  r = run("lst-finetune", base + " --task rte", dir.path.string());  // no RTE files here
  CHECK(r.status == 1);
  CHECK(r.output.find("RTE") != std::string::npos);
  std::ofstream(dir / "model/config.json") << "{\"hidden_size\": 8";
  r = run("lst-finetune", base + " --task sst2", dir.path.string());
  CHECK(r.status == 1);
  CHECK(r.output.find("config.json") != std::string::npos);
}

TEST_CASE("lst-encode writes ids, hidden states and mean-pooled embeddings that match the library") {
  lst_test::TempDir dir("encode");
  lst_test::write_tiny_model_dir(dir / "model");
  std::ofstream(dir / "in.txt") << "good movie\nthe plot was very boring .\tbad\n";
  const std::string base = "--model " + (dir / "model") + " --input " + (dir / "in.txt") + " --output ";
  Result r = run("lst-encode", base + (dir / "ids.safetensors") + " --tokenize-only", dir.path.string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  {
    const io::SafetensorsFile ids(dir / "ids.safetensors");
    CHECK(ids.entries().size() == 3);
    Tensor<std::int32_t> got(Shape{2, 10});
    ids.read_i32("input_ids", got.view());
    const std::int32_t first[] = {2, 5, 7, 3, 0, 0, 0, 0, 0, 0};  // [CLS] good movie [SEP] + padding
    for (int t = 0; t < 10; ++t) CHECK(got(0, t) == first[t]);
    ids.read_i32("token_type_ids", got.view());
    CHECK(got(1, 8) == 1);  // "bad" is the second sentence of the pair
  }
  r = run("lst-encode", base + (dir / "h.safetensors") + " --all-layers", dir.path.string());
  REQUIRE(r.status == 0);
  const io::SafetensorsFile out(dir / "h.safetensors");
  Tensor<float> last(Shape{2, 10, 8}), pooled(Shape{2, 8}), layers(Shape{3, 2, 10, 8});
  out.read("last_hidden_state", last.view());
  out.read("sentence_embedding", pooled.view());
  out.read("hidden_states", layers.view());
  // The same sentence through the library directly.
  BertEncoder<float> bert(lst_test::tiny_config(), false);
  bert.load(io::SafetensorsFile(dir / "model/model.safetensors"));
  Tensor<std::int32_t> ids(Shape{1, 4});
  const std::int32_t v[] = {2, 5, 7, 3};
  std::copy(v, v + 4, ids.data());
  Tensor<float> h(Shape{1, 4, 8});
  bert.forward(ids, {}, {}, h, {}, Mode::inference, 0);
  for (int c = 0; c < 8; ++c) {
    double mean = 0;
    for (int t = 0; t < 4; ++t) {
      CHECK(last(0, t, c) == doctest::Approx(h(0, t, c)).epsilon(1e-5));
      CHECK(layers(2, 0, t, c) == doctest::Approx(h(0, t, c)).epsilon(1e-5));
      mean += h(0, t, c) / 4;
    }
    CHECK(pooled(0, c) == doctest::Approx(mean).epsilon(1e-5));
    CHECK(last(0, 5, c) == 0.0f);  // padding
  }
  r = run("lst-encode", "--model " + (dir / "nowhere") + " --input " + (dir / "in.txt") + " --output x",
          dir.path.string());
  CHECK(r.status == 1);
  CHECK(r.output.find("nowhere") != std::string::npos);
}
