// SPDX-License-Identifier: MIT
#include <lst/lst.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "gradient_check.hpp"
#include "tiny_model.hpp"

using namespace lst;
using lst_test::TempDir;
using lst_test::tiny_config;
using lst_test::write_tiny_checkpoint;

namespace {

/// A learnable task: label 1 iff token 5 occurs; lengths 3..9 so that batches need padding.
std::vector<EncodedExample> tiny_task(std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<EncodedExample> out;
  for (std::size_t i = 0; i < n; ++i) {
    EncodedExample e;
    const std::size_t len = 3 + rng.below(7);
    e.ids.push_back(1);  // [CLS]
    for (std::size_t t = 1; t + 1 < len; ++t) e.ids.push_back(std::int32_t(3 + rng.below(13)));
    e.ids.push_back(2);  // [SEP]
    e.type_ids.assign(e.ids.size(), 0);
    e.label = std::find(e.ids.begin(), e.ids.end(), 5) != e.ids.end();
    out.push_back(std::move(e));
  }
  return out;
}

/// Forwards to a model and asks the loop to stop (as Ctrl-C would) after update `stop_at`.
struct StopAt final : TaskModel {
  TaskModel& inner;
  std::uint64_t stop_at;
  StopAt(TaskModel& m, std::uint64_t s) : inner(m), stop_at(s) {}
  std::string method() const override { return inner.method(); }
  std::string identity() const override { return inner.identity(); }
  nlohmann::json config() const override { return inner.config(); }
  std::vector<ParameterArena<float>*> trainable() override { return inner.trainable(); }
  index_t total_parameters() const override { return inner.total_parameters(); }
  index_t outputs() const override { return inner.outputs(); }
  double train_step(const Batch& b, std::uint64_t step) override {
    if (step == stop_at) request_stop();
    return inner.train_step(b, step);
  }
  void predict(const Batch& b, TensorView<float> out) override { inner.predict(b, out); }
};

TrainConfig small_run(const std::string& out) {
  TrainConfig c;
  c.epochs = 3;
  c.batch_size = 8;
  c.lr = 3e-3;
  c.out_dir = out;
  c.progress = false;
  c.log_every = 1;
  return c;
}

}  // namespace

TEST_CASE("linear schedule: warm-up from 0, peak, linear decay to 0") {
  const LinearSchedule s(1e-3, 10, 110);
  CHECK(s.lr(0) == 0.0);
  CHECK(s.lr(5) == doctest::Approx(5e-4));
  CHECK(s.lr(10) == doctest::Approx(1e-3));
  CHECK(s.lr(60) == doctest::Approx(5e-4));
  CHECK(s.lr(110) == 0.0);
  CHECK(LinearSchedule(1e-3, 0, 4).lr(0) == doctest::Approx(1e-3));
  CHECK_THROWS_AS(LinearSchedule(1e-3, 5, 4), Error);
}

TEST_CASE("clipping by global norm scales every group by one factor and reports the norm before") {
  ParameterArena<float> a("a"), b("b");
  auto pa = a.add("w", Shape{2});
  auto pb = b.add("w", Shape{1});
  a.allocate(true);
  b.allocate(true);
  pa.grad()(0) = 3;
  pa.grad()(1) = 0;
  pb.grad()(0) = 4;  // global norm 5
  const std::vector<ParameterArena<float>*> groups = {&a, &b};
  CHECK(clip_grad_norm(groups, 10.0) == doctest::Approx(5.0));
  CHECK(pa.grad()(0) == 3.0f);  // under the limit: untouched
  CHECK(clip_grad_norm(groups, 1.0) == doctest::Approx(5.0));
  CHECK(pa.grad()(0) == doctest::Approx(0.6));
  CHECK(pb.grad()(0) == doctest::Approx(0.8));
  CHECK(global_grad_norm(groups) == doctest::Approx(1.0).epsilon(1e-5));
  pb.grad()(0) = std::nanf("");
  CHECK_THROWS_WITH_AS(clip_grad_norm(groups, 1.0), doctest::Contains("diverged"), Error);
  // Long groups (whole runs of the partial sums and a tail) against one plain sum.
  ParameterArena<float> c("c"), e("e");
  auto pc = c.add("w", Shape{1003});
  auto pe = e.add("w", Shape{21});
  c.allocate(true);
  e.allocate(true);
  double expected = 0;
  for (index_t i = 0; i < 1003; ++i) {
    pc.grad()(i) = float(i % 17) - 8.0f;
    expected += double(pc.grad()(i)) * double(pc.grad()(i));
  }
  for (index_t i = 0; i < 21; ++i) {
    pe.grad()(i) = 0.5f * float(i);
    expected += double(pe.grad()(i)) * double(pe.grad()(i));
  }
  CHECK(global_grad_norm(std::vector<ParameterArena<float>*>{&c, &e}) ==
        doctest::Approx(std::sqrt(expected)));
}

TEST_CASE("SGD with momentum and decoupled decay matches the update computed by hand") {
  ParameterArena<double> arena;
  auto w = arena.add("w", Shape{1});
  arena.allocate(true);
  w.value()(0) = 2.0;
  Sgd<double> opt(arena, SgdConfig{0.9, 0.1});
  double ref = 2.0, buf = 0;
  const double grads[] = {1.0, -0.5, 0.25};
  for (int t = 0; t < 3; ++t) {
    w.grad()(0) = grads[t];
    opt.step(0.1);
    buf = t == 0 ? grads[t] : 0.9 * buf + grads[t];
    ref = ref * (1 - 0.1 * 0.1) - 0.1 * buf;
    CHECK(w.value()(0) == doctest::Approx(ref).epsilon(1e-12));
  }
  ParameterArena<double> plain;
  plain.add("w", Shape{3});
  plain.allocate(true);
  const std::size_t before = memory_tracker().current(MemCategory::optimizer);
  Sgd<double> no_state(plain);
  CHECK(memory_tracker().current(MemCategory::optimizer) == before);  // plain SGD keeps nothing
}

TEST_CASE("AdamW leaves biases and norms undecayed by default, as BERT's recipe does") {
  CHECK(is_bias_or_norm("encoder.layer.0.attention.query.bias"));
  CHECK(is_bias_or_norm("embeddings.LayerNorm.weight"));
  CHECK(is_bias_or_norm("encoder.layer.3.output_norm.weight"));
  CHECK_FALSE(is_bias_or_norm("encoder.layer.3.ffn.fc1.weight"));
  ParameterArena<double> arena;
  auto w = arena.add("fc.weight", Shape{1});
  auto b = arena.add("fc.bias", Shape{1});
  arena.allocate(true);
  w.value()(0) = b.value()(0) = 1.0;  // zero gradients: only decay can move them
  AdamW<double> opt(arena, AdamWConfig{0.9, 0.999, 1e-8, 0.5});
  opt.step(0.1);
  CHECK(w.value()(0) == doctest::Approx(0.95));
  CHECK(b.value()(0) == 1.0);
}

TEST_CASE("epoch batches: every example once, reproducible per (seed, epoch), grouping cuts padding") {
  std::vector<std::uint32_t> lengths;
  Rng rng(3);
  for (int i = 0; i < 1000; ++i) lengths.push_back(2 + rng.below(60));
  auto padded = [&](const std::vector<std::vector<std::uint32_t>>& batches) {
    std::size_t total = 0;
    for (const auto& b : batches) {
      std::uint32_t longest = 0;
      for (auto r : b) longest = std::max(longest, lengths[r]);
      total += longest * b.size();
    }
    return total;
  };
  for (bool group : {false, true}) {
    const auto a = epoch_batches(lengths, 32, 42, 0, group);
    CHECK(a.size() == 32);  // ceil(1000 / 32)
    std::multiset<std::uint32_t> seen;
    for (const auto& b : a) {
      CHECK(b.size() <= 32);
      seen.insert(b.begin(), b.end());
    }
    CHECK(seen.size() == 1000);
    CHECK(std::set<std::uint32_t>(seen.begin(), seen.end()).size() == 1000);
    CHECK(epoch_batches(lengths, 32, 42, 0, group) == a);
    CHECK(epoch_batches(lengths, 32, 42, 1, group) != a);
    CHECK(epoch_batches(lengths, 32, 43, 0, group) != a);
  }
  CHECK(padded(epoch_batches(lengths, 32, 42, 0, true)) <
        padded(epoch_batches(lengths, 32, 42, 0, false)) * 3 / 4);
}

TEST_CASE("make_batch pads to the longest example and masks the padding") {
  std::vector<EncodedExample> ex(2);
  ex[0].ids = {1, 7, 2};
  ex[0].type_ids = {0, 0, 0};
  ex[0].label = 1;
  ex[1].ids = {1, 8, 2, 9, 2};
  ex[1].type_ids = {0, 0, 0, 1, 1};
  const std::uint32_t rows[] = {0, 1};
  const Batch b = make_batch(ex, rows, 2);
  CHECK(b.ids.shape() == Shape{2, 5});
  CHECK(b.real_tokens == 8);
  CHECK(b.ids(0, 3) == 0);
  CHECK(b.mask(0, 2) == 1);
  CHECK(b.mask(0, 3) == 0);
  CHECK(b.token_types(1, 4) == 1);
  CHECK(b.labels(0) == 1);
  const std::uint32_t bad[] = {2};
  CHECK_THROWS_WITH_AS(make_batch(ex, bad, 1), doctest::Contains("outside the 2 examples"), Error);
}

TEST_CASE("TaskHead backward (dropout, linear) matches finite differences") {
  TaskHead<double> head(5, 3, 0.3, 11);
  Rng rng(2);
  lst_test::randomize(head.parameters(), rng, 0.5);
  auto pooled = lst_test::randn(Shape{4, 5}, rng), g = lst_test::randn(Shape{4, 3}, rng);
  Tensor<double> logits(Shape{4, 3}), d_pooled(Shape{4, 5});
  auto ctx = head.forward(pooled, logits, Mode::training, 6);
  head.backward(ctx, g, d_pooled, GradMode::overwrite);
  auto checked = lst_test::parameters_of(head.parameters());
  checked.push_back({"pooled", pooled.view(), d_pooled.view()});
  lst_test::check_gradients(checked, [&] {
    head.forward(pooled, logits, Mode::training, 6);
    return lst_test::dot(logits, g);
  });
}

TEST_CASE("full fine-tuning learns a task, and a resumed run repeats the uninterrupted loss curve exactly") {
  TempDir dir("resume");
  write_tiny_checkpoint(dir / "model.safetensors");
  const io::SafetensorsFile weights(dir / "model.safetensors");
  const auto train = tiny_task(64, 1), dev = tiny_task(48, 2);

  BertFullFineTuning straight(tiny_config(), weights, 2, 5);
  Trainer t1(straight, small_run(dir / "straight"), train, dev, io::GlueTask::sst2);
  const TrainResult r1 = t1.run();
  REQUIRE(r1.steps == 24);
  CHECK_FALSE(r1.interrupted);
  CHECK(t1.losses().back() < t1.losses().front());
  CHECK(std::filesystem::exists(dir / "straight/best.safetensors"));

  {
    BertFullFineTuning model(tiny_config(), weights, 2, 5);
    StopAt stopping(model, 10);  // Ctrl-C during update 10 (0-based): the loop stops after it
    Trainer t2(stopping, small_run(dir / "resumed"), train, dev, io::GlueTask::sst2);
    const TrainResult r2 = t2.run();
    clear_stop_request();
    CHECK(r2.interrupted);
    CHECK(r2.steps == 11);
    REQUIRE(t2.losses().size() == 11);
    for (std::size_t i = 0; i < 11; ++i) CHECK(t2.losses()[i] == t1.losses()[i]);
  }
  BertFullFineTuning fresh(tiny_config(), weights, 2, 5);  // a new process would start from here
  Trainer t3(fresh, small_run(dir / "resumed"), train, dev, io::GlueTask::sst2);
  const TrainResult r3 = t3.run();
  CHECK(r3.resumed_from == 11);
  REQUIRE(t3.losses().size() == 13);
  for (std::size_t i = 0; i < 13; ++i) CHECK(t3.losses()[i] == t1.losses()[11 + i]);  // bit for bit
  CHECK(r3.last.metrics.at("accuracy") == r1.last.metrics.at("accuracy"));
  CHECK(r3.best_epoch == r1.best_epoch);

  // The log is JSON lines: a record per step, an interrupt, a resume, and an eval per epoch.
  std::ifstream log(dir / "resumed/log.jsonl");
  int train_records = 0, evals = 0, resumes = 0, interrupts = 0;
  for (std::string line; std::getline(log, line);) {
    const auto j = nlohmann::json::parse(line);
    const std::string ev = j.at("event");
    train_records += ev == "train";
    evals += ev == "eval";
    resumes += ev == "resume";
    interrupts += ev == "interrupt";
  }
  CHECK(train_records == 24);
  CHECK(evals == 3);
  CHECK(resumes == 1);
  CHECK(interrupts == 1);
}

TEST_CASE("a checkpoint is refused by another model, another run, or when damaged, without a crash") {
  TempDir dir("refuse");
  write_tiny_checkpoint(dir / "model.safetensors");
  const io::SafetensorsFile weights(dir / "model.safetensors");
  const auto train = tiny_task(16, 1), dev = tiny_task(8, 2);
  BertFullFineTuning model(tiny_config(), weights, 2, 5);
  TrainConfig cfg = small_run(dir / "run");
  cfg.epochs = 1;
  Trainer(model, cfg, train, dev, io::GlueTask::sst2).run();
  const std::string last = dir / "run/last.safetensors";

  BertFullFineTuning three_classes(tiny_config(), weights, 3, 5);
  CHECK_THROWS_WITH_AS(load_checkpoint(last, three_classes, {}), doctest::Contains("another method"), Error);
  TrainConfig other = cfg;
  other.batch_size = 4;
  CHECK_THROWS_WITH_AS(Trainer(model, other, train, dev, io::GlueTask::sst2).run(),
                       doctest::Contains("would not continue the same run"), Error);

  // Truncated at many points: always an error naming the file, never a crash, and the model untouched.
  std::ifstream in(last, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const float before = model.trainable()[0]->values().data()[0];
  for (std::size_t cut :
       {std::size_t(0), std::size_t(7), std::size_t(100), bytes.size() / 2, bytes.size() - 1}) {
    const std::string damaged = dir / "damaged.safetensors";
    std::ofstream(damaged, std::ios::binary).write(bytes.data(), std::streamsize(cut));
    CHECK_THROWS_WITH_AS(load_checkpoint(damaged, model, {}), doctest::Contains("damaged.safetensors"),
                         Error);
  }
  CHECK(model.trainable()[0]->values().data()[0] == before);
}

TEST_CASE("weight average: TensorFlow's decay schedule, the recursion by hand, and swapping twice undoes") {
  ParameterArena<float> arena("g");
  auto w = arena.add("w", Shape{3});
  arena.allocate(true);
  float* v = w.value().data();
  v[0] = 1, v[1] = -2, v[2] = 4;
  WeightAverage avg({&arena}, 0.9);
  CHECK(avg.decay_at(1) == doctest::Approx(2.0 / 11.0));  // early updates are not held back by the start
  CHECK(avg.decay_at(1000) == 0.9);
  double expect[3] = {1, -2, 4};
  for (long n = 1; n <= 30; ++n) {
    for (int i = 0; i < 3; ++i) v[i] = float(i + 1) * float(n % 7) - 1.5f;  // the "trained" weights
    avg.update(n);
    const double d = std::min(0.9, double(1 + n) / double(10 + n));
    for (int i = 0; i < 3; ++i) expect[i] = d * expect[i] + (1 - d) * double(v[i]);
  }
  const std::vector<float> trained(v, v + 3);
  for (int i = 0; i < 3; ++i) CHECK(avg.average(0).data()[i] == doctest::Approx(expect[i]).epsilon(1e-6));
  {
    const AveragedWeightsScope averaged(&avg);
    for (int i = 0; i < 3; ++i) CHECK(v[i] == doctest::Approx(expect[i]).epsilon(1e-6));
  }
  for (int i = 0; i < 3; ++i) CHECK(v[i] == trained[std::size_t(i)]);
  CHECK_THROWS_WITH_AS(WeightAverage({&arena}, 1.0), doctest::Contains("decay"), Error);
}

TEST_CASE("a weight average leaves training alone, is what gets evaluated and kept, and resumes exactly") {
  TempDir dir("average");
  write_tiny_checkpoint(dir / "model.safetensors");
  const io::SafetensorsFile weights(dir / "model.safetensors");
  const auto train = tiny_task(64, 1), dev = tiny_task(48, 2);
  const auto weights_of = [](TaskModel& m) {
    const ParameterArena<float>& a = *m.trainable()[0];
    return std::vector<float>(a.values().data(), a.values().data() + a.size());
  };

  BertFullFineTuning plain(tiny_config(), weights, 2, 5);
  Trainer t0(plain, small_run(dir / "plain"), train, dev, io::GlueTask::sst2);
  const TrainResult r0 = t0.run();

  TrainConfig averaged_run = small_run(dir / "averaged");
  averaged_run.ema_decay = 0.9;
  BertFullFineTuning straight(tiny_config(), weights, 2, 5);
  Trainer t1(straight, averaged_run, train, dev, io::GlueTask::sst2);
  const TrainResult r1 = t1.run();
  // The raw weights took the same path, bit for bit, and their evaluation is the plain run's.
  REQUIRE(t1.losses().size() == t0.losses().size());
  for (std::size_t i = 0; i < t0.losses().size(); ++i) CHECK(t1.losses()[i] == t0.losses()[i]);
  CHECK(weights_of(straight) == weights_of(plain));
  CHECK(r1.last_raw.loss == r0.last.loss);
  CHECK(r1.best_raw_epoch == r0.best_epoch);
  CHECK(r1.last.loss != r0.last.loss);  // the average is another model

  // The best checkpoint holds the average that was evaluated, not the raw weights.
  BertFullFineTuning reloaded(tiny_config(), weights, 2, 5);
  const nlohmann::json best = load_checkpoint(dir / "averaged/best.safetensors", reloaded, {});
  CHECK(best.at("weight_average").get<bool>());
  CHECK(best.at("epoch").get<long>() == r1.best_epoch);
  CHECK(evaluate(reloaded, dev, io::GlueTask::sst2, 8).loss == doctest::Approx(r1.best.loss).epsilon(1e-12));
  CHECK(weights_of(reloaded) != weights_of(straight));

  // Interrupted and resumed: the same losses, the same average (its state is in the checkpoint).
  {
    BertFullFineTuning model(tiny_config(), weights, 2, 5);
    StopAt stopping(model, 10);
    TrainConfig c = averaged_run;
    c.out_dir = dir / "resumed";
    Trainer(stopping, c, train, dev, io::GlueTask::sst2).run();
    clear_stop_request();
  }
  BertFullFineTuning fresh(tiny_config(), weights, 2, 5);
  TrainConfig c = averaged_run;
  c.out_dir = dir / "resumed";
  Trainer t2(fresh, c, train, dev, io::GlueTask::sst2);
  const TrainResult r2 = t2.run();
  CHECK(r2.resumed_from == 11);
  CHECK(r2.last.loss == r1.last.loss);
  CHECK(r2.last_raw.loss == r1.last_raw.loss);
  CHECK(r2.best_epoch == r1.best_epoch);
  CHECK(r2.best_raw_epoch == r1.best_raw_epoch);
  BertFullFineTuning best_straight(tiny_config(), weights, 2, 5), best_resumed(tiny_config(), weights, 2, 5);
  load_checkpoint(dir / "averaged/best.safetensors", best_straight, {});
  load_checkpoint(dir / "resumed/best.safetensors", best_resumed, {});
  CHECK(weights_of(best_resumed) == weights_of(best_straight));

  // Resuming with another decay (or none) would not continue the same run: refused before anything loads.
  TrainConfig other = averaged_run;
  other.ema_decay = 0.99;
  BertFullFineTuning untouched(tiny_config(), weights, 2, 5);
  const std::vector<float> before = weights_of(untouched);
  CHECK_THROWS_WITH_AS(Trainer(untouched, other, train, dev, io::GlueTask::sst2).run(),
                       doctest::Contains("weight-average decay"), Error);
  other.ema_decay = 0;
  CHECK_THROWS_WITH_AS(Trainer(untouched, other, train, dev, io::GlueTask::sst2).run(),
                       doctest::Contains("would not continue the same run"), Error);
  CHECK(weights_of(untouched) == before);
}
