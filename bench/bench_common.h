// bench/bench_common.h — what the benchmark binaries share: the message the agents work on, the
// agent's work as a plain out-of-line function, and BM_PlainCall (the baseline every ratio uses).
#pragma once

#include <benchmark/benchmark.h>

#include "ports/message.h"

namespace msgport::bench {

struct ValueMsg : Message {
  int value = 0;
};

// The agents' work, as a plain call the compiler may not inline.
[[gnu::noinline]] inline int agent_work(ValueMsg& m) { return m.value * 2 + 1; }

inline void BM_PlainCall(benchmark::State& state) {
  ValueMsg m;
  int i = 0;
  for (auto _ : state) {
    m.value = i++;
    benchmark::DoNotOptimize(agent_work(m));
  }
}

}  // namespace msgport::bench
