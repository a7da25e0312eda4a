// Scheduling-policy flags shared by `generate` and `bench` (and later `serve`).
#include "commands.h"

namespace ls {

void add_policy_flags(CLI::App* sub, PolicyOptions* p, double* ttft_slo_ms) {
  sub->add_option(
         "--max-active-adapters", p->max_active_adapters,
         "LoRAX-style fair activation: at most this many adapters admit requests (0 = off)")
      ->check(CLI::Range(0, 1 << 20));
  sub->add_option("--adapter-cycle-ms", p->adapter_cycle_ms,
                  "With --max-active-adapters: rotate the active set this often")
      ->check(CLI::Range(0.0, 1e9));
  sub->add_flag("--vtc", p->vtc, "Virtual-token-counter fairness across adapters");
  sub->add_option("--ttft-slo-ms", *ttft_slo_ms,
                  "Abort requests still waiting for their first token after this long (0 = off)")
      ->check(CLI::Range(0.0, 1e9));
}

}  // namespace ls
