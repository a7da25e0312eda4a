// libFuzzer target for the tokenizer: the first input byte picks what the rest is.
//   even: a tokenizer.json to load (then a few encodes/decodes if it loads);
//   odd:  text to encode and ids to decode/stream with the trained fixture tokenizers (and
//         ../shared's llama3 when LS_FUZZ_SHARED names that directory).
// Invariants checked on every input (abort = finding): encode never crashes and treats invalid
// UTF-8 exactly as its replacement; decode and every streamed chunk are valid UTF-8; a short
// stream concatenates to decode(); the stop matcher releases a prefix of what it was given.
// Build and run: scripts/fuzz_tokenizer.sh (clang -fsanitize=fuzzer,address,undefined).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "text/stop_matcher.h"
#include "text/stream_detokenizer.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "tokenizer_fuzz: invariant broken: %s\n", what);
    std::abort();
  }
}

std::vector<std::unique_ptr<ls::Tokenizer>> load_fixed() {
  std::vector<std::unique_ptr<ls::Tokenizer>> out;
  const char* root = std::getenv("LS_FUZZ_FIXTURES");
  std::string dir = root ? root : "tests/fixtures/text/tokenizers/trained";
  for (const char* name : {"bytelevel", "spbpe", "wordish", "metaspace"}) {
    auto t = ls::Tokenizer::load_dir(dir + "/" + name);
    if (t.ok()) out.push_back(std::move(t).value());
  }
  if (const char* shared = std::getenv("LS_FUZZ_SHARED")) {
    auto t = ls::Tokenizer::load_dir(shared);
    if (t.ok()) out.push_back(std::move(t).value());
  }
  if (out.empty()) {
    std::fprintf(stderr, "tokenizer_fuzz: no tokenizer under %s (set LS_FUZZ_FIXTURES)\n",
                 dir.c_str());
    std::abort();
  }
  return out;
}

void check_tokenizer(const ls::Tokenizer& tok, const std::string& text) {
  for (bool special : {true, false}) {
    auto ids = tok.encode(text, special);
    if (!ids.ok()) continue;  // a clear error (input too large, regex limit) is allowed
    auto again = tok.encode(ls::tok::sanitize_utf8(text), special);
    require(again.ok() && again.value() == ids.value(), "encode(x) != encode(sanitize(x))");
    for (bool skip : {true, false}) {
      std::string full = tok.decode(ids.value(), skip);
      require(ls::tok::is_valid_utf8(full), "decode produced invalid UTF-8");
    }
  }
}

void check_ids(const ls::Tokenizer& tok, const uint8_t* data, size_t size) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 1 < size && ids.size() < 64; i += 2) {
    int32_t v = (data[i] << 8) | data[i + 1];
    ids.push_back(v % (tok.vocab_size() + 3) - 1);  // includes -1 and ids past the vocabulary
  }
  for (bool skip : {true, false}) {
    std::string full = tok.decode(ids, skip);
    require(ls::tok::is_valid_utf8(full), "decode of ids produced invalid UTF-8");
    ls::StreamDetokenizer stream(tok, skip);
    std::string streamed;
    for (int32_t id : ids) {
      std::string chunk = stream.push(id);
      require(ls::tok::is_valid_utf8(chunk), "streamed chunk is not valid UTF-8");
      streamed += chunk;
    }
    streamed += stream.finish();
    require(streamed == full, "stream of <= 64 ids differs from decode");
  }
}

void check_stops(const std::string& text) {
  if (text.size() < 4) return;
  std::string stop = text.substr(0, 1 + static_cast<unsigned char>(text[0]) % 3);
  ls::StopMatcher m({stop, "\n\n"});
  std::string body = text.substr(stop.size()), out;
  for (size_t i = 0; i < body.size(); i += 3) {
    auto o = m.push(body.substr(i, 3));
    out += o.text;
    if (o.stopped) break;
  }
  out += m.finish();
  require(body.compare(0, out.size(), out) == 0, "stop matcher released text it was not given");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto fixed = load_fixed();
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    auto t = ls::Tokenizer::from_json_text(rest);
    if (t.ok()) {
      for (const char* s : {"Hello world", " <s> x\xC3\xA9\xF0\x9F\x98\x80 12  \n", "\xff\xfe"})
        check_tokenizer(*t.value(), s);
      check_ids(*t.value(), data, size);
    } else {
      require(t.status().message().find('\n') == std::string::npos, "error spans lines");
    }
    return 0;
  }
  const ls::Tokenizer& tok = *fixed[data[0] / 2 % fixed.size()];
  check_tokenizer(tok, rest);
  check_ids(tok, data + 1, size - 1);
  check_stops(rest);
  return 0;
}
