// The sections of gpu_perf_bench, one per group of issue 7's targets. Each builds what it
// needs (backend, model, pages) from scratch, prints its own table, and returns its figures;
// an exception means the section failed (the runner records the message and goes on).
#pragma once

#include "gpu_perf/perf_common.h"

namespace ls::perf {

SectionOut section_copy(Ctx& ctx);      // 1: copy bandwidth and cuBLAS GEMM ceilings
SectionOut section_decode(Ctx& ctx);    // 2: decode step vs the bandwidth floor
SectionOut section_prefill(Ctx& ctx);   // 3: prefill FLOP/s vs the GEMM ceiling
SectionOut section_lora(Ctx& ctx);      // 4: LoRA overhead in decode and prefill
SectionOut section_kernels(Ctx& ctx);   // 5: LoRA and attention kernels alone
SectionOut section_loading(Ctx& ctx);   // 6: cold/warm adapter loading under load
SectionOut section_capacity(Ctx& ctx);  // 7: adapters that fit; 2,000-adapter throughput
SectionOut section_peer(Ctx& ctx);      // 8: our side of the PEFT peer workload

}  // namespace ls::perf
