// bench/bench_common.h — what the benchmark binaries share: the message the agents work on, the
// agent's work as a plain out-of-line function, BM_PlainCall (the baseline every ratio uses), and
// the two coroutines of a round-trip benchmark (the client's do_msg loop, the server's loop).
#pragma once

#include <benchmark/benchmark.h>
#include <msgport/ports/message.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/queue_port.h>
#include <msgport/ports/task.h>

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

// The client: one co_await do_msg(port) per benchmark iteration, the same agent work each time.
template <class P>
Task<void> do_msg_loop(benchmark::State& state, P& port) {
  ValueMsg m;
  int i = 0;
  for (auto _ : state) {
    m.value = i++;
    benchmark::DoNotOptimize(co_await do_msg(port, m));
  }
}

// The server: replies each request on its queue port with the same work, until the port closes.
template <class QPort>
Task<void> serve_loop(QPort& port) {
  while (Message* m = co_await wait_port(port)) {
    reply_msg(*m, static_cast<ValueMsg*>(m)->value * 2 + 1);
  }
}

}  // namespace msgport::bench
