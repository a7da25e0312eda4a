// `loraserve make-demo DIR`: writes the embedded default model and its demo adapters.
#include <cstdio>

#include "commands.h"
#include "model/demo_model.h"

namespace ls {

Command add_make_demo_command(CLI::App& app) {
  auto* sub = app.add_subcommand("make-demo", "Write the small demo model and its LoRA adapters");
  sub->footer(
      "Example:\n  loraserve make-demo build/demo\n  loraserve generate --model build/demo/model "
      "--lora poet=build/demo/adapters/poet --adapter poet --prompt-ids 1,5,9 --max-tokens 16");
  auto dir = std::make_shared<std::string>();
  auto seed = std::make_shared<uint64_t>(42);
  sub->add_option("dir", *dir, "Output directory")->required();
  sub->add_option("--seed", *seed, "Random seed of the weights");
  return {sub, [dir, seed]() {
            auto r = make_demo(*dir, *seed);
            if (!r.ok()) return fail(r.status().message());
            std::printf("wrote %s/model\n", dir->c_str());
            for (const auto& a : r.value())
              std::printf("wrote %s (adapter '%s')\n", a.dir.c_str(), a.name.c_str());
            return 0;
          }};
}

}  // namespace ls
