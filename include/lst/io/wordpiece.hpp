// SPDX-License-Identifier: MIT
/// @file wordpiece.hpp
/// @brief BERT's tokenizer (Devlin et al. 2019, section 3; Wu et al. 2016 for WordPiece), identical in output
/// to
///        Hugging Face's BertTokenizer: basic tokenization (cleaning, CJK, whitespace, lower-casing with
///        accent stripping through Unicode NFD, punctuation splitting), then greedy longest-match-first
///        WordPiece.
///
/// Needs utf8proc (Unicode categories, case mapping and canonical decomposition): link it (pkg-config
/// libutf8proc) in any target that includes this header.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <utf8proc.h>

#include "../core/error.hpp"

LST_NAMESPACE_BEGIN
namespace io {

/// One encoded example: [CLS] a [SEP] (b [SEP]) with segment ids 0 for a, 1 for b.
struct Encoding {
  std::vector<std::int32_t> ids, type_ids;
};

class WordPieceTokenizer {
 public:
  /// Longer words become [UNK] whole, as in BERT's reference implementation.
  static constexpr std::size_t max_chars_per_word = 100;

  /// Reads `vocab.txt` (one token per line, id = line number). `lower_case` is the checkpoint's do_lower_case
  /// (true for uncased models, which then also strip accents).
  static WordPieceTokenizer from_file(const std::string& path, bool lower_case = true) {
    std::ifstream f(path, std::ios::binary);
    if (!f) lst::detail::raise<Error>("vocabulary '", path, "': cannot open");
    WordPieceTokenizer t;
    t.m_lower = lower_case;
    std::string line;
    while (std::getline(f, line)) {
      // Only the newline is stripped (Hugging Face's load_vocab): a token may legitimately end in other
      // space.
      const auto id = static_cast<std::int32_t>(t.m_tokens.size());
      t.m_vocab.emplace(line, id);  // a duplicate keeps its first id
      t.m_tokens.push_back(std::move(line));
    }
    if (t.m_tokens.empty()) lst::detail::raise<Error>("vocabulary '", path, "': empty");
    auto special = [&](const char* name) {
      const auto it = t.m_vocab.find(name);
      if (it == t.m_vocab.end()) lst::detail::raise<Error>("vocabulary '", path, "': no ", name, " token");
      return it->second;
    };
    t.m_unk = special("[UNK]");
    t.m_cls = special("[CLS]");
    t.m_sep = special("[SEP]");
    t.m_pad = special("[PAD]");
    return t;
  }

  std::size_t vocab_size() const { return m_tokens.size(); }
  std::int32_t unk_id() const { return m_unk; }
  std::int32_t cls_id() const { return m_cls; }
  std::int32_t sep_id() const { return m_sep; }
  std::int32_t pad_id() const { return m_pad; }
  const std::string& token(std::int32_t id) const { return m_tokens.at(static_cast<std::size_t>(id)); }

  /// Word-piece ids of `text` (no special tokens). Invalid UTF-8 is an error naming the byte offset.
  std::vector<std::int32_t> tokenize(std::string_view text) const {
    std::vector<std::int32_t> out;
    for (const std::u32string& word : basic_tokenize(text)) word_piece(word, out);
    return out;
  }

  /// [CLS] a [SEP] or [CLS] a [SEP] b [SEP], truncated to at most `max_len` ids longest-first (one id at a
  /// time from the longer side, the second on a tie, as Hugging Face does).
  Encoding encode(std::string_view a, const std::string_view* b, std::size_t max_len) const {
    std::vector<std::int32_t> ta = tokenize(a), tb;
    if (b) tb = tokenize(*b);
    const std::size_t special = b ? 3 : 2;
    LST_CHECK(max_len >= special, "WordPieceTokenizer: max_len ", max_len, " leaves no room for the ",
              special, " special tokens");
    while (ta.size() + tb.size() + special > max_len) {
      if (ta.size() > tb.size())
        ta.pop_back();
      else
        tb.pop_back();
    }
    Encoding e;
    e.ids.push_back(m_cls);
    e.ids.insert(e.ids.end(), ta.begin(), ta.end());
    e.ids.push_back(m_sep);
    e.type_ids.assign(e.ids.size(), 0);
    if (b) {
      e.ids.insert(e.ids.end(), tb.begin(), tb.end());
      e.ids.push_back(m_sep);
      e.type_ids.resize(e.ids.size(), 1);
    }
    return e;
  }

 private:
  static bool is_whitespace(std::int32_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
  }
  static bool is_control(std::int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    const auto cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF;
  }
  /// ASCII symbols count as punctuation although Unicode files some ($, +, ^, `) as symbols (BERT's rule).
  static bool is_punctuation(std::int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
      return true;
    const auto cat = utf8proc_category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
  }
  /// The CJK Unified Ideographs blocks, which BERT splits into single characters (not Hangul or kana).
  static bool is_cjk(std::int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B820 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
  }

  /// Cleaning, CJK spacing, whitespace split, lower-casing + accent stripping, punctuation split: the words.
  std::vector<std::u32string> basic_tokenize(std::string_view text) const {
    std::vector<std::u32string> words;
    std::u32string word;
    auto flush = [&] {
      if (!word.empty()) words.push_back(std::move(word));
      word.clear();
    };
    const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
    std::size_t at = 0;
    while (at < text.size()) {
      utf8proc_int32_t c = 0;
      const utf8proc_ssize_t n = utf8proc_iterate(p + at, utf8proc_ssize_t(text.size() - at), &c);
      if (n <= 0)
        lst::detail::raise<Error>("WordPieceTokenizer: invalid UTF-8 at byte ", at, " of the input");
      at += std::size_t(n);
      if (c == 0 || c == 0xFFFD || is_control(c)) continue;
      if (is_whitespace(c)) {
        flush();
        continue;
      }
      if (is_cjk(c)) {  // each ideograph is a word of its own
        flush();
        words.push_back(std::u32string(1, char32_t(c)));
        continue;
      }
      append_normalised(c, word, words, flush);
    }
    flush();
    return words;
  }

  /// Lower-cases and strips accents (NFD, then drop nonspacing marks) when the model is uncased, then splits
  /// punctuation off into words of its own.
  template <class Flush>
  void append_normalised(std::int32_t c, std::u32string& word, std::vector<std::u32string>& words,
                         Flush& flush) const {
    utf8proc_int32_t decomposed[8];
    utf8proc_ssize_t count = 1;
    decomposed[0] = c;
    if (m_lower) {
      c = utf8proc_tolower(c);
      int boundclass = 0;
      count = utf8proc_decompose_char(c, decomposed, 8, utf8proc_option_t(UTF8PROC_DECOMPOSE), &boundclass);
      if (count < 0 || count > 8) {
        count = 1;
        decomposed[0] = c;
      }
    }
    for (utf8proc_ssize_t i = 0; i < count; ++i) {
      const std::int32_t d = decomposed[i];
      if (m_lower && utf8proc_category(d) == UTF8PROC_CATEGORY_MN) continue;
      if (is_punctuation(d)) {
        flush();
        words.push_back(std::u32string(1, char32_t(d)));
      } else {
        word.push_back(char32_t(d));
      }
    }
  }

  static std::string utf8(const std::u32string& s, std::size_t begin, std::size_t end) {
    std::string out;
    utf8proc_uint8_t buf[4];
    for (std::size_t i = begin; i < end; ++i)
      out.append(reinterpret_cast<const char*>(buf),
                 std::size_t(utf8proc_encode_char(utf8proc_int32_t(s[i]), buf)));
    return out;
  }

  /// Greedy longest-match-first: the longest vocabulary prefix, then "##"-prefixed continuations; a word with
  /// any unmatched remainder becomes a single [UNK].
  void word_piece(const std::u32string& word, std::vector<std::int32_t>& out) const {
    if (word.size() > max_chars_per_word) {
      out.push_back(m_unk);
      return;
    }
    const std::size_t mark = out.size();
    std::size_t start = 0;
    while (start < word.size()) {
      std::size_t end = word.size();
      std::int32_t found = -1;
      for (; end > start; --end) {
        const std::string piece = (start > 0 ? "##" : "") + utf8(word, start, end);
        const auto it = m_vocab.find(piece);
        if (it != m_vocab.end()) {
          found = it->second;
          break;
        }
      }
      if (found < 0) {
        out.resize(mark);
        out.push_back(m_unk);
        return;
      }
      out.push_back(found);
      start = end;
    }
  }

  std::unordered_map<std::string, std::int32_t> m_vocab;
  std::vector<std::string> m_tokens;
  bool m_lower = true;
  std::int32_t m_unk = 0, m_cls = 0, m_sep = 0, m_pad = 0;
};

}  // namespace io
LST_NAMESPACE_END
