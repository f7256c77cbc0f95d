// SPDX-License-Identifier: MIT
/// @file tokenize.cpp
/// @brief `lst-tokenize --vocab vocab.txt [--max-len N] [--cased]`: reads lines from stdin (a sentence, or a
///        tab-separated pair), writes each line's token ids, space-separated (scripts/compare_tokenizer.py
///        diffs them against Hugging Face's BertTokenizer).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <lst/io/wordpiece.hpp>

int main(int argc, char** argv) {
  std::string vocab;
  std::size_t max_len = 512;
  bool lower = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--vocab" && i + 1 < argc)
      vocab = argv[++i];
    else if (a == "--max-len" && i + 1 < argc)
      max_len = std::strtoul(argv[++i], nullptr, 10);
    else if (a == "--cased")
      lower = false;
    else {
      std::fprintf(stderr, "usage: lst-tokenize --vocab vocab.txt [--max-len N=512] [--cased] < lines\n");
      return a == "--help" ? 0 : 2;
    }
  }
  if (vocab.empty()) {
    std::fprintf(stderr, "lst-tokenize: --vocab is required\n");
    return 2;
  }
  try {
    const auto tok = lst::io::WordPieceTokenizer::from_file(vocab, lower);
    std::string line;
    for (std::size_t n = 1; std::getline(std::cin, line); ++n) {
      const auto tab = line.find('\t');
      const std::string a = line.substr(0, tab);
      const std::string b = tab == std::string::npos ? std::string() : line.substr(tab + 1);
      const std::string_view bv = b;
      lst::io::Encoding e;
      try {
        e = tok.encode(a, tab == std::string::npos ? nullptr : &bv, max_len);
      } catch (const lst::Error& err) {
        std::fprintf(stderr, "lst-tokenize: stdin line %zu: %s\n", n, err.what());
        return 1;
      }
      for (std::size_t i = 0; i < e.ids.size(); ++i) std::printf(i ? " %d" : "%d", e.ids[i]);
      std::printf("\n");
    }
  } catch (const lst::Error& err) {
    std::fprintf(stderr, "lst-tokenize: %s\n", err.what());
    return 1;
  }
  return 0;
}
