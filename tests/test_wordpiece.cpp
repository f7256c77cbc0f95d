// SPDX-License-Identifier: MIT
// Expected ids are Hugging Face BertTokenizer's (transformers 4.36) on all-MiniLM-L6-v2's uncased vocabulary.
#include <lst/io/wordpiece.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "gradient_check.hpp"

using namespace lst;
using Ids = std::vector<std::int32_t>;

namespace {
std::string vocab_path() { return lst_test::model_dir() + "/vocab.txt"; }
const io::WordPieceTokenizer& tokenizer() {
  static const io::WordPieceTokenizer t = [] {
    REQUIRE_MESSAGE(std::filesystem::exists(vocab_path()),
                    "no " << vocab_path() << ": run scripts/fetch-model.py");
    return io::WordPieceTokenizer::from_file(vocab_path(), true);
  }();
  return t;
}
Ids encode(const std::string& a) { return tokenizer().encode(a, nullptr, 512).ids; }
}  // namespace

TEST_CASE("WordPiece matches BertTokenizer: accents, CJK, punctuation runs, long words, empty input") {
  CHECK(encode("Crème brûlée à la française, s'il vous plaît!") ==
        Ids{101,  13675, 21382, 7987,  9307, 2063,  1037, 2474, 18427, 1010,
            1055, 1005,  6335,  29536, 2271, 20228, 4886, 2102, 999,   102});
  CHECK(encode("東京は日本の首都です") ==
        Ids{101, 1879, 1755, 1672, 1864, 1876, 1671, 100, 1961, 1665, 30184, 102});
  CHECK(encode("Wait...!!! What?!?") ==
        Ids{101, 3524, 1012, 1012, 1012, 999, 999, 999, 2054, 1029, 999, 1029, 102});
  CHECK(encode(std::string(300, 'x') + " ok") == Ids{101, 100, 7929, 102});  // > 100 characters: [UNK]
  CHECK(encode("") == Ids{101, 102});
  CHECK(encode("   \t\n ") == Ids{101, 102});
  CHECK(encode("Ünïcödé ΣΊΣΥΦΟΣ naïveté") ==
        Ids{101, 27260, 1173, 18199, 29733, 29735, 29736, 29730, 29733, 15743, 2618, 102});
  CHECK(encode("don't stop-believing #1 $5 @home") ==
        Ids{101, 2123, 1005, 1056, 2644, 1011, 8929, 1001, 1015, 1002, 1019, 1030, 2188, 102});
  CHECK(encode("tokenization unaffable") == Ids{101, 19204, 3989, 14477, 20961, 3468, 102});
  CHECK(encode(std::string("a\0b", 3) + "\x7f" + "\xef\xbf\xbd" + "c") == encode("abc"));  // cleaned away
}

TEST_CASE("Sentence pairs: token types and longest-first truncation (ties cut the second)") {
  const std::string_view b = "h i j";
  const io::Encoding e = tokenizer().encode("a b c d e f g", &b, 8);
  CHECK(e.ids == Ids{101, 1037, 1038, 1039, 102, 1044, 1045, 102});
  CHECK(e.type_ids == Ids{0, 0, 0, 0, 0, 1, 1, 1});
  CHECK_THROWS_AS(tokenizer().encode("a", &b, 2), Error);
}

TEST_CASE("Invalid UTF-8 and bad vocabularies are clear errors") {
  const std::string msg = lst_test::error_of([] { encode("ok \xc3\x28 bad"); });
  CHECK(msg.find("invalid UTF-8 at byte 3") != std::string::npos);
  CHECK_THROWS_AS(encode("\xff"), Error);
  CHECK_THROWS_AS(encode("\xe2\x82"), Error);  // truncated sequence
  CHECK(lst_test::error_of([] {
          io::WordPieceTokenizer::from_file("/nonexistent/vocab.txt");
        }).find("/nonexistent/vocab.txt") != std::string::npos);
  const auto p =
      std::filesystem::temp_directory_path() / ("lst_vocab_" + std::to_string(::getpid()) + ".txt");
  std::ofstream(p) << "[PAD]\n[UNK]\nhello\n";
  CHECK(lst_test::error_of([&] { io::WordPieceTokenizer::from_file(p.string()); }).find("[CLS]") !=
        std::string::npos);
  std::filesystem::remove(p);
}
