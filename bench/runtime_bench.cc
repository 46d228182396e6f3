// bench/runtime_bench.cc — what the per-core runtime costs, against the physical floor and
// against what people write without a runtime.
//
//   BM_PlainCall              a non-inlined call, for ratios within this binary
//   BM_SameCoreRoundTrip      a lightweight thread -> another thread's port on the same core ->
//                             reply
//   BM_CrossCoreRoundTrip     to a thread port on the other core and back, both cores busy
//                             (they poll before sleeping, so neither sleeps)
//   BM_CrossCoreRoundTripIdle the same when the target core is asleep: it sleeps as soon as it
//                             is idle, so every message wakes it (the sender's core waits busy)
//   BM_RawPingPong            two pinned threads bouncing one cache line: the physical floor
//   BM_RawPingPongTwoLines    the same with the ping on one line and the pong on another: the
//                             floor for anything with a request path and a separate reply path
//   BM_MutexCondvarRoundTrip  a std::mutex + std::condition_variable hand-off between two threads
//   BM_CrossCoreThroughput    one-way messages from core 0 to core 1, batched (items/s)
//   BM_Spawn                  spawn and join one lightweight thread
//
// Round trips run inside the runtime (the benchmark loop is a coroutine on core 0), timed in
// real time. The idle variants are run once per wake mode (MSG_RING, eventfd).
#include <benchmark/benchmark.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/runtime.h>
#include <pthread.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "bench_common.h"

namespace msgport {
namespace {

using bench::agent_work;
using bench::ValueMsg;

BENCHMARK(bench::BM_PlainCall)->Name("BM_PlainCall");

Task<void> echo_server(LwThread& self) { return bench::serve_loop(self.port()); }

void round_trips(benchmark::State& state, int server_core, RuntimeOptions options,
                 bool target_sleeps = false) {
  options.cores = 2;
  // Under valgrind (tools/instructions.sh sets MSGPORT_BENCH_NO_SLEEP) a core must not sleep in
  // io_uring_enter: valgrind runs one thread at a time and would not let the waker run.
  if (std::getenv("MSGPORT_BENCH_NO_SLEEP") != nullptr)
    options.poll_before_sleep = absl::Seconds(100);
  Runtime rt(options);
  // The target core sleeps as soon as it is idle; the sender's core waits for the reply busy.
  if (target_sleeps) rt.core(server_core).set_poll_before_sleep(absl::ZeroDuration());
  auto server = rt.spawn(server_core, echo_server);
  rt.block_on(bench::do_msg_loop(state, server.port()));
  rt.stop(StopMode::kCancel);
}

void BM_SameCoreRoundTrip(benchmark::State& state) { round_trips(state, 0, {}); }
BENCHMARK(BM_SameCoreRoundTrip)->UseRealTime();

void BM_CrossCoreRoundTrip(benchmark::State& state) { round_trips(state, 1, {}); }
BENCHMARK(BM_CrossCoreRoundTrip)->UseRealTime();

void BM_CrossCoreRoundTripIdle(benchmark::State& state) {
  RuntimeOptions o;
  o.wake = state.range(0) == 0 ? WakeMode::kMsgRing : WakeMode::kEventfd;
  state.SetLabel(state.range(0) == 0 ? "msg_ring" : "eventfd");
  round_trips(state, 1, o, /*target_sleeps=*/true);
}
BENCHMARK(BM_CrossCoreRoundTripIdle)->Arg(0)->Arg(1)->UseRealTime();

void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Restores the calling thread's CPU affinity when it goes out of scope.
struct KeepAffinity {
  cpu_set_t saved;
  KeepAffinity() { pthread_getaffinity_np(pthread_self(), sizeof saved, &saved); }
  ~KeepAffinity() { pthread_setaffinity_np(pthread_self(), sizeof saved, &saved); }
};

// Two pinned threads: the ping is a store to `ping` that the other thread sees, the pong a store
// to `pong` (the same variable for the one-line floor).
void ping_pong(benchmark::State& state, bool two_lines) {
  KeepAffinity keep;  // later benchmarks run unpinned, as people's threads do
  struct alignas(64) Line {
    std::atomic<std::int64_t> v{0};
  };
  Line lines[2];
  std::atomic<std::int64_t>& ping = lines[0].v;
  std::atomic<std::int64_t>& pong = two_lines ? lines[1].v : lines[0].v;
  std::atomic<bool> stop{false};
  std::thread other([&] {
    pin(1);
    std::int64_t expect = 1;
    while (!stop.load(std::memory_order_relaxed)) {
      if (ping.load(std::memory_order_acquire) == expect) {
        pong.store(expect + 1, std::memory_order_release);
        expect += 2;
      }
    }
  });
  pin(0);
  std::int64_t v = 0;
  for (auto _ : state) {
    ping.store(v + 1, std::memory_order_release);
    while (pong.load(std::memory_order_acquire) != v + 2) {
    }
    v += 2;
  }
  stop.store(true);
  other.join();
}

void BM_RawPingPong(benchmark::State& state) { ping_pong(state, false); }
BENCHMARK(BM_RawPingPong)->UseRealTime();

void BM_RawPingPongTwoLines(benchmark::State& state) { ping_pong(state, true); }
BENCHMARK(BM_RawPingPongTwoLines)->UseRealTime();

void BM_MutexCondvarRoundTrip(benchmark::State& state) {
  std::mutex mu;
  std::condition_variable cv;
  int turn = 0;  // 1: the other thread's turn, 2: ours again
  bool stop = false;
  std::thread other([&] {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [&] { return turn == 1 || stop; });
      if (stop) return;
      turn = 2;
      cv.notify_all();
    }
  });
  for (auto _ : state) {
    std::unique_lock lock(mu);
    turn = 1;
    cv.notify_all();
    cv.wait(lock, [&] { return turn == 2; });
  }
  {
    std::lock_guard lock(mu);
    stop = true;
  }
  cv.notify_all();
  other.join();
}
BENCHMARK(BM_MutexCondvarRoundTrip)->UseRealTime();

// One-way: core 0 sends messages (send_msg, no reply port) to core 1's sink, in batches of
// kBatch; the sink replies each (marking it done) and core 0 reuses a message once it is done.
constexpr int kBatch = 256;

Task<void> sink(LwThread& self) {
  while (Message* m = co_await wait_port(self.port())) reply_msg(*m, 0);
}

Task<void> throughput_loop(benchmark::State& state, ThreadPort& to) {
  std::vector<ValueMsg> msgs(kBatch);
  for (auto _ : state) {
    for (ValueMsg& m : msgs) send_msg(to, m);
    for (ValueMsg& m : msgs) co_await wait_msg(m);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

void BM_CrossCoreThroughput(benchmark::State& state) {
  RuntimeOptions o;
  o.cores = 2;
  Runtime rt(o);
  auto to = rt.spawn(1, sink);
  rt.block_on(throughput_loop(state, to.port()));
  rt.stop(StopMode::kCancel);
}
BENCHMARK(BM_CrossCoreThroughput)->UseRealTime();

Task<int> nothing() { co_return 1; }

Task<void> spawn_loop(benchmark::State& state, Runtime& rt) {
  for (auto _ : state) benchmark::DoNotOptimize(co_await rt.spawn(0, nothing()));
}

void BM_Spawn(benchmark::State& state) {
  RuntimeOptions o;
  o.cores = 2;
  Runtime rt(o);
  rt.block_on(spawn_loop(state, rt));
  rt.stop();
}
BENCHMARK(BM_Spawn)->UseRealTime();

// Spawn N threads that park on their ports, then stop(kDrain): the time per thread, which should
// not grow with N (each thread's end is O(1)).
// (Not `while (co_await wait_port(p) != nullptr) {}`: g++ 12 miscompiles a co_await that is the
// whole condition of an empty loop; see README.md.)
Task<void> parked(LwThread& self) {
  for (;;) {
    Message* m = co_await wait_port(self.port());
    if (m == nullptr) break;
  }
}

void BM_SpawnStopDrain(benchmark::State& state) {
  const auto n = static_cast<long>(state.range(0));
  for (auto _ : state) {
    RuntimeOptions o;
    o.cores = 2;
    Runtime rt(o);
    for (long i = 0; i < n; ++i) rt.spawn(static_cast<int>(i % 2), parked).detach();
    rt.stop(StopMode::kDrain);
  }
  state.SetItemsProcessed(state.iterations() * n);
  state.counters["ns_per_thread"] =
      benchmark::Counter(static_cast<double>(state.iterations() * n),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SpawnStopDrain)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Arg(1'000'000)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ---- the summary table -----------------------------------------------------------------------

class TableReporter final : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      std::string name = r.run_name.function_name;
      if (!r.report_label.empty()) name += "/" + r.report_label;
      ns_[name] = r.GetAdjustedRealTime();  // default unit: ns
      if (auto it = r.counters.find("items_per_second"); it != r.counters.end()) {
        items_[name] = it->second;
      }
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    auto get = [&](const std::string& n) { return ns_.count(n) ? ns_[n] : 0.0; };
    double plain = get("BM_PlainCall"), raw = get("BM_RawPingPong");
    double mc = get("BM_MutexCondvarRoundTrip");
    std::printf("\nmsgport runtime: goals (one run)\n\n");
    auto row = [](const char* what, double v, double goal, bool le, const char* unit) {
      if (!(v > 0)) return;  // not run (--benchmark_filter)
      bool met = le ? v <= goal : v >= goal;
      std::printf("  %-46s %10.2f %-3s goal %s %-8.3g %s\n", what, v, unit, le ? "<=" : ">=", goal,
                  met ? "met" : "MISSED");
    };
    if (plain > 0)
      row("SameCoreRoundTrip / PlainCall", get("BM_SameCoreRoundTrip") / plain, 10, true, "x");
    if (raw > 0)
      row("CrossCoreRoundTrip / RawPingPong", get("BM_CrossCoreRoundTrip") / raw, 1.5, true, "x");
    if (double two = get("BM_RawPingPongTwoLines"); two > 0) {
      std::printf("  %-46s %10.2f x   (reference: request and reply on separate lines)\n",
                  "CrossCoreRoundTrip / RawPingPongTwoLines", get("BM_CrossCoreRoundTrip") / two);
    }
    if (mc > 0) {
      row("CrossCoreRoundTripIdle(msg_ring) / MutexCondvar",
          get("BM_CrossCoreRoundTripIdle/msg_ring") / mc, 0.5, true, "x");
      row("CrossCoreRoundTripIdle(eventfd) / MutexCondvar",
          get("BM_CrossCoreRoundTripIdle/eventfd") / mc, 0.5, true, "x");
    }
    if (items_.count("BM_CrossCoreThroughput")) {
      row("CrossCoreThroughput (M messages/s)", items_["BM_CrossCoreThroughput"] / 1e6, 20, false,
          "M/s");
    }
    std::printf("\n");
  }

 private:
  std::map<std::string, double> ns_;
  std::map<std::string, double> items_;
};

}  // namespace
}  // namespace msgport

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  msgport::TableReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
