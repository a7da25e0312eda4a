#include "bundle_flags.h"

#include "compress/bundle_adapters.h"
#include "compress/bundle_serving.h"

namespace ls {

void add_bundle_flags(CLI::App* sub, std::vector<std::string>* dirs, std::string* serving) {
  sub->add_option("--lora-bundle", *dirs,
                  "Compressed bundle directory (loraserve compress); registers every adapter of "
                  "it by name; repeatable");
  sub->add_option("--bundle-serving", *serving,
                  "How bundle adapters are served: shared (bases shared on the device, the "
                  "shared-basis op) or materialize (each an ordinary rank-K LoRA)")
      ->check(CLI::IsMember({"shared", "materialize"}))
      ->capture_default_str();
}

Result<LoadedBundles> load_bundles(const std::vector<std::string>& dirs, const std::string& serving,
                                   const ModelConfig& model, Backend& backend) {
  LoadedBundles out;
  for (const std::string& dir : dirs) {
    if (serving == "materialize") {
      auto list = load_bundle_adapters(dir, model);
      if (!list.ok()) return list.status().with_context("--lora-bundle " + dir);
      for (LoraAdapter& a : list.value())
        out.materialized.push_back(std::make_shared<const LoraAdapter>(std::move(a)));
      continue;
    }
    auto served = serve_bundle_dir(dir, model, backend);
    if (!served.ok()) return served.status().with_context("--lora-bundle " + dir);
    out.device_bytes += served.value().device_bytes;
    for (auto& a : served.value().adapters) out.resident.push_back(std::move(a));
  }
  return out;
}

}  // namespace ls
