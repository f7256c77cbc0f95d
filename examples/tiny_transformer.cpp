// SPDX-License-Identifier: MIT
/// @file tiny_transformer.cpp
/// @brief Demo: a 2-layer post-LN transformer classifier built from lst's layers, trained with AdamW on a
///        counting task it generates, then the memory report. `lst-tiny-transformer --help` for options.
///
/// Task: a sequence of 4..24 random tokens (ids 2..11) after a [CLS] token (id 1), padded with id 0. Label 1
/// when token 3 occurs more often than token 5, else 0 (ties are re-drawn). Solving it needs attention to
/// count across the sequence; a bag-of-position model cannot.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <lst/lst.hpp>

using namespace lst;

namespace {

struct Options {
  index_t steps = 300, batch = 32, dim = 32, heads = 4, layers = 2, seq = 25;
  double lr = 3e-3;
  std::uint64_t seed = 42;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "lst-tiny-transformer: %s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--steps")
      o.steps = std::atoll(value("--steps"));
    else if (a == "--batch")
      o.batch = std::atoll(value("--batch"));
    else if (a == "--lr")
      o.lr = std::atof(value("--lr"));
    else if (a == "--seed")
      o.seed = std::strtoull(value("--seed"), nullptr, 10);
    else {
      std::fprintf(
          stderr, "usage: lst-tiny-transformer [--steps N=300] [--batch N=32] [--lr X=3e-3] [--seed N=42]\n");
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  if (o.steps <= 0 || o.batch <= 0 || !(o.lr > 0)) {
    std::fprintf(stderr, "lst-tiny-transformer: --steps, --batch and --lr must be positive\n");
    std::exit(2);
  }
  return o;
}

constexpr std::int32_t pad_id = 0, cls_id = 1, vocab = 12;

/// Fills ids (B, T), mask (B, T) and labels (B) with fresh examples.
void make_batch(Rng& rng, Tensor<std::int32_t>& ids, Tensor<std::int32_t>& mask,
                Tensor<std::int32_t>& labels) {
  const index_t B = ids.dim(0), T = ids.dim(1);
  for (index_t b = 0; b < B; ++b) {
    int threes = 0, fives = 0;
    index_t len = 0;
    do {
      len = 4 + index_t(rng.below(std::uint32_t(T - 4)));
      threes = fives = 0;
      ids(b, 0) = cls_id;
      for (index_t t = 1; t < T; ++t) {
        const std::int32_t tok = t <= len ? std::int32_t(2 + rng.below(vocab - 2)) : pad_id;
        ids(b, t) = tok;
        threes += tok == 3;
        fives += tok == 5;
      }
    } while (threes == fives);
    for (index_t t = 0; t < T; ++t) mask(b, t) = ids(b, t) != pad_id;
    labels(b) = threes > fives;
  }
}

/// Token + position embeddings, LayerNorm, encoder layers, then a linear classifier on the [CLS] state.
class TinyClassifier {
 public:
  explicit TinyClassifier(const Options& o)
      : m_tokens(m_params, "embeddings.tokens", vocab, o.dim),
        m_positions(m_params, "embeddings.positions", o.seq, o.dim),
        m_norm(m_params, "embeddings.norm", o.dim),
        m_head(m_params, "classifier", o.dim, 2) {
    const EncoderLayerConfig cfg{o.dim, o.heads, 4 * o.dim, ActivationKind::gelu, 1e-12, 0.1};
    for (index_t l = 0; l < o.layers; ++l)
      m_layers.emplace_back(m_params, "encoder." + std::to_string(l), cfg, o.seed + 100 + std::uint64_t(l));
    m_params.allocate(true);
    Rng rng(o.seed);
    for (std::size_t i = 0; i < m_params.count(); ++i) {  // BERT's init: N(0, 0.02), LayerNorm 1 and 0
      const std::string& name = m_params.info(i).name;
      const bool norm = name.find("norm") != std::string::npos;
      if (norm)
        m_params.value(i).fill(name.find(".weight") != std::string::npos ? 1.0f : 0.0f);
      else if (name.find(".bias") == std::string::npos)
        init::normal(m_params.value(i), rng, 0.02);
    }
  }
  ParameterArena<float>& params() { return m_params; }

  /// Returns the mean loss; with `train`, also leaves gradients in the arena. Writes logits (B, 2).
  float step(const Tensor<std::int32_t>& ids, const Tensor<std::int32_t>& mask,
             const Tensor<std::int32_t>& labels, Tensor<float>& logits, bool train,
             std::uint64_t step_index) {
    const Mode mode = train ? Mode::training : Mode::inference;
    const index_t B = ids.dim(0), T = ids.dim(1), C = m_tokens.dim();
    Tensor<std::int32_t> pos(Shape{B, T});
    for (index_t b = 0; b < B; ++b)
      for (index_t t = 0; t < T; ++t) pos(b, t) = std::int32_t(t);
    Tensor<float> x(Shape{B, T, C}), p(Shape{B, T, C});
    auto tok_ctx = m_tokens.forward(ids, x, mode);
    auto pos_ctx = m_positions.forward(pos, p, mode);
    x += p;
    auto norm_ctx = m_norm.forward(x, x, mode);
    std::vector<typename EncoderLayer<float>::Context> ctxs;
    for (auto& layer : m_layers) {
      ctxs.push_back(layer.forward(x, mask, p, mode, step_index));
      std::swap(x, p);
    }
    Tensor<float> cls(Shape{B, C});  // the [CLS] state of every sequence
    for (index_t b = 0; b < B; ++b) cls[b].assign(x[b][0]);
    auto head_ctx = m_head.forward(cls, logits, mode);
    Tensor<float> dlogits(logits.shape());
    const float loss =
        cross_entropy<float, Cpu>(logits, labels, train ? dlogits.view() : TensorView<float>());
    if (!train) return loss;

    m_params.zero_grad();
    Tensor<float> dcls(Shape{B, C});
    m_head.backward(head_ctx, dlogits, dcls, GradMode::accumulate);
    Tensor<float> dx = Tensor<float>::zeros(Shape{B, T, C}), dprev(Shape{B, T, C});
    for (index_t b = 0; b < B; ++b) dx[b][0].assign(dcls[b]);
    for (std::size_t l = m_layers.size(); l-- > 0;) {
      m_layers[l].backward(ctxs[l], dx, dprev, GradMode::accumulate);
      std::swap(dx, dprev);
    }
    m_norm.backward(norm_ctx, dx, dx, GradMode::accumulate);
    m_tokens.backward(tok_ctx, dx, GradMode::accumulate);
    m_positions.backward(pos_ctx, dx, GradMode::accumulate);
    return loss;
  }

 private:
  ParameterArena<float> m_params{"tiny"};
  Embedding<float> m_tokens, m_positions;
  LayerNorm<float> m_norm;
  std::vector<EncoderLayer<float>> m_layers;
  Linear<float> m_head;
};

double accuracy(const Tensor<float>& logits, const Tensor<std::int32_t>& labels) {
  index_t right = 0;
  for (index_t b = 0; b < labels.numel(); ++b) right += (logits(b, 1) > logits(b, 0)) == (labels(b) == 1);
  return double(right) / double(labels.numel());
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  TinyClassifier model(o);
  AdamW<float> opt(model.params(), AdamWConfig{0.9, 0.999, 1e-8, 0.01});
  std::printf("lst %s tiny transformer: %lld layers, width %lld, %lld heads, %lld parameters\n",
              version_string(), (long long)o.layers, (long long)o.dim, (long long)o.heads,
              (long long)model.params().parameter_count());

  Rng data(o.seed + 1), held_out(o.seed + 2);
  Tensor<std::int32_t> ids(Shape{o.batch, o.seq}), mask(ids.shape()), labels(Shape{o.batch});
  Tensor<float> logits(Shape{o.batch, 2});
  double running = 0;
  for (index_t s = 1; s <= o.steps; ++s) {
    make_batch(data, ids, mask, labels);
    const double warm = std::min(1.0, double(s) / 30.0);  // linear warm-up, then linear decay to 0
    const double lr = o.lr * warm * (1.0 - double(s - 1) / double(o.steps));
    running += model.step(ids, mask, labels, logits, true, std::uint64_t(s));
    opt.step(lr);
    if (s % 50 == 0 || s == o.steps) {
      std::printf("step %4lld  loss %.4f  lr %.2e\n", (long long)s, running / double(s % 50 ? s % 50 : 50),
                  lr);
      running = 0;
    }
  }
  double acc = 0;
  const int eval_batches = 16;
  for (int i = 0; i < eval_batches; ++i) {
    make_batch(held_out, ids, mask, labels);
    model.step(ids, mask, labels, logits, false, 0);
    acc += accuracy(logits, labels) / eval_batches;
  }
  std::printf("held-out accuracy %.1f%% on %d fresh examples (chance ~50%%)\n", 100 * acc,
              int(eval_batches * o.batch));
  std::printf("%s", memory_tracker().report("lst memory (peak over the run)").c_str());
  return 0;
}
