// SPDX-License-Identifier: MIT
// The LST training step's data-parallel shards (SideOptions::training_shards): the split, the gradient
// shards of a parameter arena, and a sharded step against the same step in one piece.
#include <lst/lst.hpp>

#include <stdexcept>

#include "gradient_check.hpp"
#include "tiny_model.hpp"

using namespace lst;

namespace {

/// `lengths.size()` examples with those token counts, each at least 2 (ids 2 ... 3, words from a small
/// range).
std::vector<EncodedExample> examples_of_lengths(const std::vector<std::size_t>& lengths, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<EncodedExample> out;
  for (const std::size_t len : lengths) {
    EncodedExample e;
    e.ids.push_back(2);
    for (std::size_t t = 1; t + 1 < len; ++t) e.ids.push_back(std::int32_t(5 + rng.below(11)));
    e.ids.push_back(3);
    e.type_ids.assign(e.ids.size(), 0);
    e.label = int(rng.below(2));
    out.push_back(std::move(e));
  }
  return out;
}

Batch batch_of(const std::vector<EncodedExample>& examples) {
  std::vector<std::uint32_t> rows(examples.size());
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = std::uint32_t(i);
  return make_batch(examples, rows.data(), rows.size());
}

using TinyLst = BertLadderSideTuning<LstConfig<2>>;

/// Every trainable gradient (side network, then head) after one step.
struct StepResult {
  double loss = 0;
  std::vector<float> side, head;
};
StepResult step_of(TinyLst& model, const Batch& batch, std::uint64_t step) {
  StepResult r;
  r.loss = model.train_step(batch, step);
  r.side = model.trainable()[0]->grads().to_vector();
  r.head = model.trainable()[1]->grads().to_vector();
  return r;
}

}  // namespace

TEST_CASE("training shards: contiguous runs of sequences with about equal token counts") {
  const auto bounds = [](const std::vector<std::size_t>& lengths, index_t shards) {
    return TinyLst::shard_bounds(batch_of(examples_of_lengths(lengths, 1)), shards);
  };
  // 20 tokens in two: the first sequence alone holds half.
  CHECK(bounds({10, 2, 2, 2, 2, 2}, 2) == std::vector<index_t>{0, 1, 6});
  // 8 tokens in three (targets 2 and 5): the second boundary is as close to 5 after sequence 2 (4) as
  // after sequence 3 (6), and takes the later one.
  CHECK(bounds({2, 2, 2, 2}, 3) == std::vector<index_t>{0, 1, 3, 4});
  // One long sequence at the end (targets 8 and 16 of 24): every shard still gets a sequence.
  CHECK(bounds({2, 2, 2, 18}, 3) == std::vector<index_t>{0, 2, 3, 4});
  // More shards than sequences: one each. One shard: the whole batch.
  CHECK(bounds({3, 4}, 4) == std::vector<index_t>{0, 1, 2});
  CHECK(bounds({3, 4, 5}, 1) == std::vector<index_t>{0, 3});
}

TEST_CASE("gradient shards: each scope writes its own block, summed into the arena's in shard order") {
  ParameterArena<float> arena("toy");
  const Param<float> w = arena.add("w", Shape{3});
  arena.allocate(true);
  ParameterArena<float> frozen("frozen");
  const Param<float> f = frozen.add("f", Shape{2});
  frozen.allocate(true);
  arena.set_gradient_shards(3);
  CHECK(arena.gradient_shards() == 3);
  CHECK(memory_tracker().current(MemCategory::gradients) >= 3 * 3 * sizeof(float));
  w.grad().fill(1.0f);
  {
    const GradientShardScope s1{1};
    w.grad().fill(10.0f);
    {
      const GradientShardScope s2{2};
      w.grad().fill(100.0f);
      // An arena without shards has no gradient for shard 2: an error naming it, not a race on its own.
      const std::string e = lst_test::error_of([&] { f.grad(); });
      CHECK(e.find("'frozen'") != std::string::npos);
      CHECK(e.find("shard 2") != std::string::npos);
    }
    CHECK(w.grad().to_vector() == std::vector<float>{10, 10, 10});  // the outer scope is back
  }
  CHECK(w.grad().to_vector() == std::vector<float>{1, 1, 1});
  arena.reduce_gradient_shards(2);  // a batch of two shards: shard 2 (stale) is left out
  CHECK(w.grad().to_vector() == std::vector<float>{11, 11, 11});
  arena.reduce_gradient_shards();
  CHECK(w.grad().to_vector() == std::vector<float>{121, 121, 121});
  CHECK(lst_test::error_of([&] { arena.reduce_gradient_shards(4); }).find("4 gradient shards") !=
        std::string::npos);
  arena.set_gradient_shards(1);
  CHECK(arena.gradient_shards() == 1);
}

TEST_CASE("run_tasks runs every task once, leaves the thread count alone and rethrows a task's error") {
  const int before = threads();
  std::vector<int> ran(5, 0);
  run_tasks(5, [&](long i) { ran[std::size_t(i)] += 1; });
  CHECK(ran == std::vector<int>(5, 1));
  CHECK(threads() == before);
  CHECK_THROWS_WITH_AS(run_tasks(4,
                                 [](long i) {
                                   if (i >= 2) throw std::runtime_error("task " + std::to_string(i));
                                 }),
                       "task 2", std::runtime_error);
  CHECK(threads() == before);
}

TEST_CASE(
    "a sharded LST step: the unsharded loss and gradients to rounding, the same bits on any thread count") {
  lst_test::TempDir dir("lst_shards");
  lst_test::write_tiny_checkpoint(dir / "model.safetensors");
  const io::SafetensorsFile weights(dir / "model.safetensors");
  const auto examples = examples_of_lengths({3, 9, 4, 7, 5, 2, 8, 6}, 5);
  const Batch batch = batch_of(examples);
  const int before = threads();
  const auto run = [&](index_t shards, int thread_count) {
    SideOptions o;  // dropout on: a shard's rows take the whole batch's masks
    o.training_shards = shards;
    set_threads(thread_count);
    TinyLst model(lst_test::tiny_config(), weights, 2, o, 9);
    step_of(model, batch, 3);  // a first step, so that the second's gradients overwrite the first's
    StepResult r = step_of(model, batch, 4);
    set_threads(before);
    return r;
  };
  const StepResult whole = run(1, 1), two = run(2, 1), two_threads = run(2, 2), three = run(3, 2);
  // The forward pass is the same computation row by row: the unsharded loss, to rounding (bit for bit where
  // each product gives a row the same bits whatever the row count: the packing-free kernel does, Eigen's GEMM
  // need not, and in an unvectorised -O0 build does not).
  CHECK(two.loss == doctest::Approx(whole.loss).epsilon(1e-6));
  CHECK(three.loss == doctest::Approx(whole.loss).epsilon(1e-6));
  // The gradients are sums of the shards' in another order: equal to rounding, and nonzero.
  REQUIRE(two.side.size() == whole.side.size());
  double largest = 0;
  for (std::size_t i = 0; i < whole.side.size(); ++i) {
    INFO("side gradient " << i);
    CHECK(two.side[i] == doctest::Approx(whole.side[i]).epsilon(1e-4).scale(1e-6));
    CHECK(three.side[i] == doctest::Approx(whole.side[i]).epsilon(1e-4).scale(1e-6));
    largest = std::max(largest, double(std::abs(whole.side[i])));
  }
  CHECK(largest > 1e-3);
  REQUIRE(two.head.size() == whole.head.size());
  for (std::size_t i = 0; i < whole.head.size(); ++i)  // the head sees the whole batch either way
    CHECK(two.head[i] == doctest::Approx(whole.head[i]).epsilon(1e-5).scale(1e-7));
  // The same shards on one thread and on two: the same bits.
  CHECK(two_threads.loss == two.loss);
  CHECK(two_threads.side == two.side);
}

TEST_CASE("a batch with fewer sequences than shards: the shards it has, no stale gradients") {
  lst_test::TempDir dir("lst_shards_small");
  lst_test::write_tiny_checkpoint(dir / "model.safetensors");
  const io::SafetensorsFile weights(dir / "model.safetensors");
  const auto big = examples_of_lengths({3, 9, 4, 7, 5, 2}, 6), small = examples_of_lengths({6, 4}, 7);
  SideOptions o;
  o.training_shards = 4;
  TinyLst model(lst_test::tiny_config(), weights, 2, o, 9);
  step_of(model, batch_of(big), 1);  // fills all four shards
  CHECK(model.side().parameters().gradient_shards() == 4);
  const StepResult after = step_of(model, batch_of(small), 2);
  o.training_shards = 2;
  TinyLst fresh(lst_test::tiny_config(), weights, 2, o, 9);
  // The same weights (no optimizer step ran), the same two shards of one sequence each: the same bits.
  const StepResult want = step_of(fresh, batch_of(small), 2);
  CHECK(after.loss == want.loss);
  CHECK(after.side == want.side);
}
