// SPDX-License-Identifier: MIT
#include <lst/lst.hpp>

#include <fstream>

#include "gradient_check.hpp"
#include "tiny_model.hpp"

using namespace lst;

namespace {

std::vector<EncodedExample> tiny_task(std::size_t n, std::uint64_t seed, std::uint32_t min_length = 3,
                                      std::uint32_t lengths = 7) {
  Rng rng(seed);
  std::vector<EncodedExample> out;
  for (std::size_t i = 0; i < n; ++i) {
    EncodedExample e;
    const std::size_t len = min_length + rng.below(lengths);
    e.ids.push_back(2);
    for (std::size_t t = 1; t + 1 < len; ++t) e.ids.push_back(std::int32_t(5 + rng.below(11)));
    e.ids.push_back(3);
    e.type_ids.assign(e.ids.size(), 0);
    e.label = std::find(e.ids.begin(), e.ids.end(), 7) != e.ids.end();
    out.push_back(std::move(e));
  }
  return out;
}

std::vector<float> ramp(std::size_t n, float start) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = start + 0.25f * float(i);
  return v;
}

}  // namespace

TEST_CASE("tap cache stores and loads each example's states, exactly in f32 and rounded in f16 / bf16") {
  for (TapDtype dtype : {TapDtype::f32, TapDtype::f16, TapDtype::bf16}) {
    TapCache cache({2, 3}, {0, 2}, 4, dtype, "k", TapCache::Storage::ram);
    const auto a = ramp(12, 7.0f), b = ramp(12, -3.0f);  // example 1: 3 rows of 4
    CHECK_FALSE(cache.filled(1));
    cache.store(1, 0, a.data());
    cache.store(1, 1, b.data());
    cache.mark_filled(1);
    CHECK(cache.filled(1));
    CHECK(cache.filled_count() == 1);
    std::vector<float> got(12);
    cache.load(1, 1, got.data());
    for (std::size_t i = 0; i < 12; ++i) CHECK(got[i] == b[i]);  // quarter steps are exact in every dtype
    cache.load(1, 0, got.data());
    CHECK(got == a);
    // Into a padded batch row of 5 tokens: the example's 3 rows, then zeros over whatever was there.
    std::vector<float> padded(20, 99.0f);
    cache.load(1, 0, padded.data(), 5);
    CHECK(std::vector<float>(padded.begin(), padded.begin() + 12) == a);
    CHECK(std::vector<float>(padded.begin() + 12, padded.end()) == std::vector<float>(8, 0.0f));
    CHECK_THROWS_WITH_AS(cache.load(1, 0, padded.data(), 2),
                         doctest::Contains("3 tokens, more than the 2 rows"), Error);
    CHECK(cache.slot(2) == 1);
    CHECK(cache.slot(1) == -1);
    CHECK_THROWS_WITH_AS(cache.load(0, 0, got.data()), doctest::Contains("never stored"), Error);
  }
}

TEST_CASE("a disk tap cache is reused only when its key matches; stale or damaged files are rebuilt") {
  lst_test::TempDir dir("tapcache");
  const std::string path = dir / "taps.cache";
  const auto v = ramp(8, 0.5f);
  {
    TapCache cache({2}, {0}, 4, TapDtype::f32, "key-1", TapCache::Storage::disk, path);
    CHECK_FALSE(cache.reused());
    cache.store(0, 0, v.data());
    cache.mark_filled(0);
  }
  {
    TapCache same({2}, {0}, 4, TapDtype::f32, "key-1", TapCache::Storage::disk, path);
    CHECK(same.reused());
    REQUIRE(same.filled(0));
    std::vector<float> got(8);
    same.load(0, 0, got.data());
    CHECK(got == v);
  }
  {
    TapCache other({2}, {0}, 4, TapDtype::f32, "key-2", TapCache::Storage::disk,
                   path);  // other data or model
    CHECK_FALSE(other.reused());
    CHECK_FALSE(other.filled(0));
  }
  std::filesystem::resize_file(path, 100);  // damaged
  TapCache damaged({2}, {0}, 4, TapDtype::f32, "key-2", TapCache::Storage::disk, path);
  CHECK_FALSE(damaged.reused());
  CHECK(damaged.filled_count() == 0);
  // The key covers the token ids: one changed id (another tokenizer, truncation or data file) changes it.
  auto examples = tiny_task(5, 1);
  const std::string k1 = TapCache::make_key("bert-1", examples, {0, 1}, TapDtype::f16);
  examples[3].ids[1] += 1;
  CHECK(TapCache::make_key("bert-1", examples, {0, 1}, TapDtype::f16) != k1);
  CHECK(TapCache::make_key("bert-2", tiny_task(5, 1), {0, 1}, TapDtype::f16) != k1);
}

TEST_CASE("with tap caching, epochs after the first skip the backbone and train like uncached epochs") {
  lst_test::TempDir dir("lst_cache");
  lst_test::write_tiny_checkpoint(dir / "model.safetensors");
  const io::SafetensorsFile weights(dir / "model.safetensors");
  const auto train = tiny_task(40, 3), dev = tiny_task(16, 4);
  SideOptions o;  // dropout on: the same masks in both runs
  TrainConfig cfg;
  cfg.epochs = 3;
  cfg.batch_size = 8;
  cfg.lr = 3e-3;
  cfg.progress = false;
  BertLadderSideTuning<LstConfig<2>> plain(lst_test::tiny_config(), weights, 2, o, 9);
  Trainer t1(plain, cfg, train, dev, io::GlueTask::sst2);
  t1.run();
  BertLadderSideTuning<LstConfig<2>> cached(lst_test::tiny_config(), weights, 2, o, 9);
  cached.enable_tap_cache(train, TapCache::Storage::ram);
  Trainer t2(cached, cfg, train, dev, io::GlueTask::sst2);
  t2.run();
  CHECK(cached.backbone_batches() == 5 + 6);  // epoch 1, plus the dev set (never cached) after each epoch
  CHECK(cached.cached_batches() == 10);       // epochs 2 and 3
  REQUIRE(t1.losses().size() == t2.losses().size());
  // Bit for bit: the cache holds the backbone's f32 states exactly, and the ladders sum their weight
  // gradients sequence by sequence whether they read the cache in place or a copy.
  CHECK(t2.losses() == t1.losses());
}

TEST_CASE(
    "ladders read an f32 tap cache in place: no copy of a cached state but the embeddings', same bits") {
  // Wide enough (ladders 32 -> 16) and batches long enough (>= 256 tokens) for the narrow kernel, which reads
  // the cached rows where they lie; the tiny model above takes the gathered fallback.
  io::BertConfig c = lst_test::tiny_config();
  c.hidden_size = 32;
  c.intermediate_size = 64;
  c.max_position_embeddings = 40;
  lst_test::TempDir dir("lst_cache_in_place");
  lst_test::write_tiny_checkpoint(dir / "model.safetensors", 7, c);
  const io::SafetensorsFile weights(dir / "model.safetensors");
  const auto train = tiny_task(48, 5, 20, 11), dev = tiny_task(8, 6, 20, 11);
  SideOptions o;
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.batch_size = 16;
  cfg.lr = 3e-3;
  cfg.progress = false;
  BertLadderSideTuning<LstConfig<2>> plain(c, weights, 2, o, 9);
  Trainer t1(plain, cfg, train, dev, io::GlueTask::sst2);
  t1.run();
  BertLadderSideTuning<LstConfig<2>> cached(c, weights, 2, o, 9);
  cached.enable_tap_cache(train, TapCache::Storage::ram);
  Trainer t2(cached, cfg, train, dev, io::GlueTask::sst2);
  t2.run();
  REQUIRE(cached.cached_batches() == 3);
  CHECK(t2.losses() == t1.losses());

  // One more cached step: the only state copied into category `taps` is the embeddings' (dropout changes
  // them); the three layers' ladders keep addresses into the cache. Each of the step's two side network
  // shards (SideOptions::training_shards) has enough rows for the narrow kernel.
  std::vector<std::uint32_t> rows(40);
  std::size_t tokens = 0;
  for (std::uint32_t i = 0; i < 40; ++i) tokens += train[rows[i] = i].ids.size();
  const Batch batch = make_batch(train, rows.data(), rows.size());
  const auto shards = BertLadderSideTuning<LstConfig<2>>::shard_bounds(batch, o.training_shards);
  REQUIRE(shards.size() == 3);
  const auto shard_rows = PackedSequences::from_mask(batch.mask.data(), batch.size(), batch.length());
  for (std::size_t k = 0; k < 2; ++k)
    REQUIRE(shard_rows.first_row(shards[k + 1]) - shard_rows.first_row(shards[k]) >= 256);
  MemoryTracker& t = memory_tracker();
  const std::size_t taps_before = t.current(MemCategory::taps);
  t.reset_peaks();
  cached.train_step(batch, 99);
  CHECK(cached.cached_batches() == 4);
  CHECK(t.peak(MemCategory::taps) - taps_before == tokens * std::size_t(c.hidden_size) * sizeof(float));
}
