// bench/select_bench.cc — what when_any, wait_port_until and JoinHandle::cancel() cost next to
// the plain operation they extend. Each pair runs in the same binary, on core 0 of a two-core
// runtime, timed in real time:
//
//   BM_DoMsgInline             co_await do_msg to an agent that answers at once (type-erased Port&)
//   BM_WhenAnyInlineFirst      when_any of 2: the first answers at once (the second is not sent)
//   BM_WhenAnyInlineSecond     when_any of 2: the first queues at a thread port on this core, the
//                              second answers at once and wins; the first is aborted (taken out of
//                              the queue, replied -ECANCELED): the slow path, with its frame
//   BM_SameCoreRoundTrip       do_msg to a thread on the same core, which replies
//   BM_WhenAnySameCore         when_any of 2 threads on the same core: the first reply wins, the
//                              other is aborted
//   BM_WaitPortReady           a thread sends to its own port, then wait_port finds it queued
//   BM_WaitPortUntilReady      the same with wait_port_until (a deadline 1 s away)
//   BM_SpawnJoin               spawn a thread that returns at once, co_await its handle
//   BM_SpawnCancelJoin         spawn a thread that sleeps for an hour, cancel it, co_await it
#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <benchmark/benchmark.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/select.h>
#include <msgport/runtime/timer.h>
#include <msgport/runtime/yield.h>

#include "bench_common.h"

namespace msgport {
namespace {

using bench::ValueMsg;

class InlinePort final : public Port {
 public:
  int begin_msg(Message& m) override { return bench::agent_work(static_cast<ValueMsg&>(m)); }
};

RuntimeOptions two_cores() {
  RuntimeOptions o;
  o.cores = 2;
  return o;
}

// ---- when_any
// ------------------------------------------------------------------------------------

Task<void> do_msg_inline(benchmark::State& state) {
  InlinePort now;
  Port& port = now;
  ValueMsg m;
  int i = 0;
  for (auto _ : state) {
    m.value = i++;
    benchmark::DoNotOptimize(co_await do_msg(port, m));
  }
}

void BM_DoMsgInline(benchmark::State& state) {
  Runtime rt(two_cores());
  rt.block_on(do_msg_inline(state));
  rt.stop();
}
BENCHMARK(BM_DoMsgInline)->UseRealTime();

// A thread that never serves: what is sent to it stays queued until aborted.
Task<void> never_serves(LwThread&) { co_await sleep_for(absl::Hours(1)); }

Task<void> when_any_inline(benchmark::State& state, ThreadPort& queued, bool inline_first) {
  InlinePort now;
  ValueMsg a, b;
  int i = 0;
  for (auto _ : state) {
    a.value = b.value = i++;
    AnyResult r = inline_first ? co_await when_any(AnyMsg(now, a), AnyMsg(queued, b))
                               : co_await when_any(AnyMsg(queued, a), AnyMsg(now, b));
    benchmark::DoNotOptimize(r.result);
  }
}

void when_any_inline_bench(benchmark::State& state, bool inline_first) {
  Runtime rt(two_cores());
  auto idle = rt.spawn(0, never_serves);
  rt.block_on(when_any_inline(state, idle.port(), inline_first));
  rt.stop(StopMode::kCancel);
}
void BM_WhenAnyInlineFirst(benchmark::State& state) { when_any_inline_bench(state, true); }
BENCHMARK(BM_WhenAnyInlineFirst)->UseRealTime();
void BM_WhenAnyInlineSecond(benchmark::State& state) { when_any_inline_bench(state, false); }
BENCHMARK(BM_WhenAnyInlineSecond)->UseRealTime();

Task<void> echo_server(LwThread& self) { return bench::serve_loop(self.port()); }

void BM_SameCoreRoundTrip(benchmark::State& state) {
  Runtime rt(two_cores());
  auto server = rt.spawn(0, echo_server);
  rt.block_on(bench::do_msg_loop(state, server.port()));
  rt.stop(StopMode::kCancel);
}
BENCHMARK(BM_SameCoreRoundTrip)->UseRealTime();

Task<void> when_any_same_core(benchmark::State& state, ThreadPort& p, ThreadPort& q) {
  ValueMsg a, b;
  int i = 0;
  for (auto _ : state) {
    a.value = b.value = i++;
    AnyResult r = co_await when_any(AnyMsg(p, a), AnyMsg(q, b));
    benchmark::DoNotOptimize(r.result);
  }
}

void BM_WhenAnySameCore(benchmark::State& state) {
  Runtime rt(two_cores());
  auto s1 = rt.spawn(0, echo_server);
  auto s2 = rt.spawn(0, echo_server);
  rt.block_on(when_any_same_core(state, s1.port(), s2.port()));
  rt.stop(StopMode::kCancel);
}
BENCHMARK(BM_WhenAnySameCore)->UseRealTime();

// ---- wait_port_until
// -----------------------------------------------------------------------------

void wait_ready_bench(benchmark::State& state, bool with_deadline) {
  Runtime rt(two_cores());
  auto h = rt.spawn(0, [&state, with_deadline](LwThread& self) -> Task<void> {
    ValueMsg m;
    absl::Time deadline = absl::Now() + absl::Seconds(1000);
    for (auto _ : state) {
      send_msg(self.port(), m);
      Message* got = with_deadline ? co_await wait_port_until(self.port(), deadline)
                                   : co_await wait_port(self.port());
      reply_msg(*got, 0);
    }
  });
  h.join();
  rt.stop();
}
void BM_WaitPortReady(benchmark::State& state) { wait_ready_bench(state, false); }
BENCHMARK(BM_WaitPortReady)->UseRealTime();
void BM_WaitPortUntilReady(benchmark::State& state) { wait_ready_bench(state, true); }
BENCHMARK(BM_WaitPortUntilReady)->UseRealTime();

// ---- cancel
// --------------------------------------------------------------------------------------

Task<int> nothing() { co_return 1; }
Task<int> sleeper() {
  co_await sleep_for(absl::Hours(1));
  co_return 1;
}

Task<void> spawn_loop(benchmark::State& state, Runtime& rt, bool cancel) {
  for (auto _ : state) {
    if (cancel) {
      auto h = rt.spawn(0, sleeper());
      co_await yield_now();  // let it start sleeping
      h.cancel();
      benchmark::DoNotOptimize(co_await h);
    } else {
      auto h = rt.spawn(0, nothing());
      co_await yield_now();  // the same trip through the run queue
      benchmark::DoNotOptimize(co_await h);
    }
  }
}

void BM_SpawnJoin(benchmark::State& state) {
  Runtime rt(two_cores());
  rt.block_on(spawn_loop(state, rt, false));
  rt.stop();
}
BENCHMARK(BM_SpawnJoin)->UseRealTime();

void BM_SpawnCancelJoin(benchmark::State& state) {
  Runtime rt(two_cores());
  rt.block_on(spawn_loop(state, rt, true));
  rt.stop();
}
BENCHMARK(BM_SpawnCancelJoin)->UseRealTime();

}  // namespace
}  // namespace msgport

BENCHMARK_MAIN();
