// SPDX-License-Identifier: MIT
/// @file batch.hpp
/// @brief Encoded task examples and padded batches: each batch is padded to its own longest sequence
///        (dynamic padding), with an attention mask marking the real tokens.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/tensor.hpp"
#include "glue.hpp"

LST_NAMESPACE_BEGIN

/// One example after tokenization: [CLS] a [SEP] (b [SEP]) ids, their segment ids, and the target.
struct EncodedExample {
  std::vector<std::int32_t> ids, type_ids;
  std::int32_t label = -1;  // class index; -1 for regression
  float score = 0.0f;       // regression target (STS-B)
};

/// Tokenizes every example of a GLUE split with `tokenizer` (anything with io::WordPieceTokenizer's
/// encode(a, b*, max_len)), truncating pairs longest-first to `max_len` tokens.
template <class Tokenizer>
std::vector<EncodedExample> encode_glue(const Tokenizer& tokenizer, const io::GlueDataset& data,
                                        std::size_t max_len) {
  std::vector<EncodedExample> out;
  out.reserve(data.examples.size());
  for (std::size_t i = 0; i < data.examples.size(); ++i) {
    const io::GlueExample& e = data.examples[i];
    const std::string_view b = e.text_b;
    try {
      auto enc = tokenizer.encode(e.text_a, e.text_b.empty() ? nullptr : &b, max_len);
      out.push_back({std::move(enc.ids), std::move(enc.type_ids), e.label, e.score});
    } catch (const Error& err) {
      detail::raise<Error>("'", data.path, "', example ", i + 1, ": ", err.what());
    }
  }
  return out;
}

/// One padded batch. ids, token types and mask are (B, T) with T the longest example of the batch;
/// padding has id `pad_id`, type 0 and mask 0.
struct Batch {
  Tensor<std::int32_t> ids, token_types, mask;          // (B, T)
  Tensor<std::int32_t> labels;                          // (B) class indices (-1 for regression tasks)
  Tensor<float> scores;                                 // (B) regression targets
  index_t real_tokens = 0;                              // mask ones: the tokens that count for tokens/s
  std::vector<std::uint32_t> rows;                      // the examples' indices in `source`
  const std::vector<EncodedExample>* source = nullptr;  // the example set the batch was drawn from
  index_t size() const { return ids.dim(0); }
  index_t length() const { return ids.dim(1); }
};

/// Gathers examples rows[0..n) into one batch padded to the longest of them.
inline Batch make_batch(const std::vector<EncodedExample>& examples, const std::uint32_t* rows, std::size_t n,
                        std::int32_t pad_id = 0) {
  LST_CHECK(n > 0, "make_batch: an empty batch");
  std::size_t longest = 0;
  for (std::size_t i = 0; i < n; ++i) {
    LST_CHECK(rows[i] < examples.size(), "make_batch: row ", rows[i], " is outside the ", examples.size(),
              " examples");
    longest = std::max(longest, examples[rows[i]].ids.size());
  }
  LST_CHECK(longest > 0, "make_batch: every example of the batch is empty");
  const index_t B = index_t(n), T = index_t(longest);
  Batch b;
  b.ids = Tensor<std::int32_t>::full(Shape{B, T}, pad_id);
  b.token_types = Tensor<std::int32_t>::zeros(Shape{B, T});
  b.mask = Tensor<std::int32_t>::zeros(Shape{B, T});
  b.labels = Tensor<std::int32_t>(Shape{B});
  b.scores = Tensor<float>(Shape{B});
  for (index_t r = 0; r < B; ++r) {
    const EncodedExample& e = examples[rows[r]];
    for (std::size_t t = 0; t < e.ids.size(); ++t) {
      b.ids.data()[r * T + index_t(t)] = e.ids[t];
      b.token_types.data()[r * T + index_t(t)] = e.type_ids[t];
      b.mask.data()[r * T + index_t(t)] = 1;
    }
    b.labels.data()[r] = e.label;
    b.scores.data()[r] = e.score;
    b.real_tokens += index_t(e.ids.size());
  }
  b.rows.assign(rows, rows + n);
  b.source = &examples;
  return b;
}

LST_NAMESPACE_END
