// loraserve: one binary, subcommands generate | make-demo (serve, bench, compress come later).
#include <cstdio>
#include <iostream>
#include <vector>

#include "base/logging.h"
#include "commands.h"

namespace ls {
int fail(const std::string& message) {
  std::string one_line = message;
  for (char& ch : one_line)
    if (ch == '\n') ch = ' ';
  std::fprintf(stderr, "loraserve: error: %s\n", one_line.c_str());
  return 1;
}
}  // namespace ls

namespace {
std::string g_command_line;
}
std::string ls::command_line() {
  return g_command_line;
}

int main(int argc, char** argv) {
  for (int i = 0; i < argc; ++i)
    g_command_line += (i ? " " : "") + std::string(i ? argv[i] : "loraserve");
  CLI::App app{"loraserve: serve many LoRA fine-tunes of one base model"};
  app.require_subcommand(1);
  std::string log_level = "warn";
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error|off")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->envname("LORASERVE_LOG_LEVEL");
  std::vector<ls::Command> commands;
  for (auto add : {ls::add_generate_command, ls::add_make_demo_command, ls::add_bench_command,
                   ls::add_compress_command})
    commands.push_back(add(app));
#ifdef LORASERVE_HAS_TEXT
  commands.push_back(ls::add_chat_template_command(app));
  commands.push_back(ls::add_tokenize_command(app));
#endif
#ifdef LORASERVE_HAS_SERVER
  commands.push_back(ls::add_serve_command(app));
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    return ls::fail(e.what()) + 1;  // usage errors exit 2
  }
  ls::init_logging(log_level);
  for (auto& cmd : commands)
    if (cmd.sub->parsed()) {
      try {
        return cmd.run();
      } catch (const std::exception& e) {
        return ls::fail(std::string("unexpected failure: ") + e.what());
      }
    }
  return ls::fail("no subcommand");
}
