// Subcommands of the loraserve binary; each registers its flags and returns an exit code.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "engine/admission_policy.h"

namespace ls {

// A registered subcommand and the function that runs it after parsing.
struct Command {
  CLI::App* sub = nullptr;
  std::function<int()> run;
};
Command add_generate_command(CLI::App& app);
Command add_make_demo_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_compress_command(CLI::App& app);
#ifdef LORASERVE_HAS_TEXT
Command add_chat_template_command(CLI::App& app);
Command add_tokenize_command(CLI::App& app);
#endif
#ifdef LORASERVE_HAS_SERVER
Command add_serve_command(CLI::App& app);
#endif

// Scheduling-policy flags (--max-active-adapters, --adapter-cycle-ms, --vtc, --ttft-slo-ms).
void add_policy_flags(CLI::App* sub, PolicyOptions* policy, double* ttft_slo_ms);

// The command line as typed, for benchmark results.
std::string command_line();

// Prints "loraserve: error: <message>" on one line and returns exit code 1.
int fail(const std::string& message);

}  // namespace ls
