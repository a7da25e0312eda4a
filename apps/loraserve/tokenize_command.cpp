// `loraserve tokenize`: encodes each {"text": ...} line of a JSONL file with a model's tokenizer
// and prints {"ids": [...], "decoded": "..."} per line (the ids' decode, specials skipped).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "text/tokenizer.h"

namespace ls {

namespace {

struct TokenizeFlags {
  std::string tokenizer;
  std::string input;
  std::string output = "jsonl";
  bool no_special = false;
};

// Encodes every line of `in`; writes one JSON line (or one array) to stdout.
int run_tokenize(const TokenizeFlags& f, std::istream& in) {
  auto loaded = Tokenizer::load_dir(f.tokenizer);
  if (!loaded.ok()) return fail(loaded.status().message());
  const Tokenizer& tok = *loaded.value();
  nlohmann::ordered_json all = nlohmann::ordered_json::array();
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    std::string where = f.input + ":" + std::to_string(line_no);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      return fail(where + ": malformed JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      return fail(where + ": each line must be {\"text\": \"...\"}");
    auto ids = tok.encode(j["text"].get<std::string>(), !f.no_special);
    if (!ids.ok()) return fail(where + ": " + ids.status().message());
    nlohmann::ordered_json out;
    out["ids"] = ids.value();
    out["decoded"] = tok.decode(ids.value(), /*skip_special_tokens=*/true);
    if (f.output == "json") {
      all.push_back(std::move(out));
    } else {
      std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
  }
  if (f.output == "json")
    std::cout << all.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  std::cout.flush();
  return std::cout ? 0 : fail("cannot write to stdout");
}

}  // namespace

Command add_tokenize_command(CLI::App& app) {
  auto* sub =
      app.add_subcommand("tokenize", "Encode text with a model's tokenizer (JSONL in, JSONL out)");
  sub->footer(
      "Each input line is {\"text\": \"...\"}; each output line is {\"ids\": [...], \"decoded\": "
      "\"...\"}.\nThe tokenizer is DIR/tokenizer.json, or DIR/tokenizer.model when there is no "
      "tokenizer.json.\n\nExamples:\n  loraserve tokenize --tokenizer models/llama3 --input "
      "prompts.jsonl\n  echo '{\"text\": \"Hello\"}' | loraserve tokenize --tokenizer "
      "models/llama3 --input - --no-special");
  auto f = std::make_shared<TokenizeFlags>();
  sub->add_option("--tokenizer", f->tokenizer, "Model or tokenizer directory")->required();
  sub->add_option("--input", f->input, "JSONL file of {\"text\": ...} lines, or - for stdin")
      ->required();
  sub->add_option("--output", f->output, "jsonl: one line per input; json: one array")
      ->check(CLI::IsMember({"jsonl", "json"}));
  sub->add_flag("--no-special", f->no_special,
                "Do not add the template's special tokens (add_special_tokens=False)");
  return {sub, [f]() {
            if (f->input == "-") return run_tokenize(*f, std::cin);
            std::ifstream in(f->input);
            if (!in) return fail(f->input + ": cannot open");
            return run_tokenize(*f, in);
          }};
}

}  // namespace ls
