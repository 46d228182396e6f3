// bench/ports_bench.cc — the cost of a message against the cost of a call.
//
// Every benchmark does the same agent work (read the message's value, compute a result) through
// a different path:
//   BM_PlainCall        a non-inlined function call
//   BM_VirtualCall      the same through a virtual call
//   BM_SyncMsg          co_await do_msg on a type-erased Port& whose agent acts at once
//   BM_SyncMsgConcrete  the same through the concrete (final) port type
//   BM_SendMsgSync      send_msg to that agent, then wait_msg to collect the reply
//   BM_AsyncMsg         a full round trip on one thread: the sender suspends, the owner of a
//                       queue port (LocalPort) is scheduled, serves, replies, and the reply
//                       resumes the sender
//   BM_AsyncMsgQueuePort     the same through the thread-safe QueuePort
//   BM_PlainCallInCoroutine  the plain call from a coroutine loop like the messages' (with an
//                       await that completes at once): the coroutine frame's own share
//
// The plain call is kept out of line (noinline), as a real call. The port's agent is an ordinary
// virtual function: type-erased (Port&) it is an indirect call; through the concrete final type
// the compiler may inline it, which is what the concrete type is for (ports/port.h).
//
// After the usual output it prints the headline table: medians, and each one's ratio to
// BM_PlainCall measured in the same run. Unless told otherwise it runs 5 repetitions.
#include <benchmark/benchmark.h>
#include <msgport/ports/ports.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bench_common.h"

namespace msgport {
namespace {

using bench::agent_work;
using bench::ValueMsg;

// ---- baselines ---------------------------------------------------------------------------------

BENCHMARK(bench::BM_PlainCall)->Name("BM_PlainCall");

struct Worker {
  virtual ~Worker() = default;
  virtual int work(ValueMsg& m) = 0;
};
struct Doubling final : Worker {
  [[gnu::noinline]] int work(ValueMsg& m) override { return m.value * 2 + 1; }
};

void BM_VirtualCall(benchmark::State& state) {
  Doubling d;
  Worker* w = &d;
  benchmark::DoNotOptimize(w);  // the compiler may not know the dynamic type
  ValueMsg m;
  int i = 0;
  for (auto _ : state) {
    m.value = i++;
    benchmark::DoNotOptimize(w->work(m));
  }
}
BENCHMARK(BM_VirtualCall);

// ---- messages ----------------------------------------------------------------------------------

// The agent does the same work as agent_work. Through Port& it is an indirect call; through the
// concrete final type the compiler may inline it — what the concrete type is for.
class SyncPort final : public Port {
 public:
  int begin_msg(Message& m) override { return static_cast<ValueMsg&>(m).value * 2 + 1; }
};

void BM_SyncMsg(benchmark::State& state) {
  SyncPort concrete;
  Port* port = &concrete;
  benchmark::DoNotOptimize(port);  // type-erased: the compiler may not see SyncPort
  sync_wait(bench::do_msg_loop<Port>(state, *port));
}
BENCHMARK(BM_SyncMsg);

void BM_SyncMsgConcrete(benchmark::State& state) {
  SyncPort port;
  sync_wait(bench::do_msg_loop<SyncPort>(state, port));
}
BENCHMARK(BM_SyncMsgConcrete);

Task<void> send_loop(benchmark::State& state, Port& port, ReplyPort& replies) {
  ValueMsg m;
  m.set_reply_port(&replies);
  int i = 0;
  for (auto _ : state) {
    m.value = i++;
    send_msg(port, m);
    benchmark::DoNotOptimize(co_await wait_msg(m));
  }
}

void BM_SendMsgSync(benchmark::State& state) {
  SyncPort concrete;
  ReplyPort replies;
  Port* port = &concrete;
  benchmark::DoNotOptimize(port);
  sync_wait(send_loop(state, *port, replies));
}
BENCHMARK(BM_SendMsgSync);

// One thread's context: a run queue of scheduled coroutines. Single-threaded by construction
// here (nothing else runs), so it needs no lock.
class BenchContext final : public Context {
 public:
  void schedule(std::coroutine_handle<> h) noexcept override { ready_.push_back(h); }
  void run() {
    Bind bind(this);
    while (!ready_.empty()) {
      std::coroutine_handle<> h = ready_.back();
      ready_.pop_back();
      refill_budget();  // as a runtime core does per resumption (ports/context.h)
      h.resume();
    }
  }

 private:
  std::vector<std::coroutine_handle<>> ready_;
};

// The client's loop, then it closes the port so that the server ends.
template <class QPort>
Task<void> async_loop(benchmark::State& state, QPort& port) {
  co_await bench::do_msg_loop(state, port);
  port.close();
}

template <class QPort>
void async_round_trips(benchmark::State& state) {
  BenchContext ctx;
  QPort port;
  Task<void> server = bench::serve_loop(port);
  Task<void> client = async_loop(state, port);
  {
    Context::Bind bind(&ctx);
    server.start();  // parks on the empty port
    client.start();  // sends, schedules the server, parks on its message
  }
  ctx.run();  // server and client now hand control to each other until the loop ends
  if (!client.done() || !server.done()) state.SkipWithError("round trip did not finish");
}

// Through a LocalPort: the queue port for one context (the runtime's same-core thread port).
void BM_AsyncMsg(benchmark::State& state) { async_round_trips<LocalPort>(state); }
BENCHMARK(BM_AsyncMsg);

// The same through the thread-safe QueuePort, whose queue takes a spin lock.
void BM_AsyncMsgQueuePort(benchmark::State& state) { async_round_trips<QueuePort>(state); }
BENCHMARK(BM_AsyncMsgQueuePort);

// The plain call from the same coroutine loop as the messages, with an await that completes at
// once: what the coroutine frame itself costs, next to the message machinery.
std::atomic<bool> g_ready{true};  // always true; the compiler cannot know that

struct ReadyNow {
  bool await_ready() const noexcept { return g_ready.load(std::memory_order_relaxed); }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  void await_resume() const noexcept {}
};

Task<void> call_loop(benchmark::State& state) {
  ValueMsg m;
  ReadyNow now;
  int i = 0;
  for (auto _ : state) {
    m.value = i++;
    benchmark::DoNotOptimize(agent_work(m));
    co_await now;
  }
}

void BM_PlainCallInCoroutine(benchmark::State& state) { sync_wait(call_loop(state)); }
BENCHMARK(BM_PlainCallInCoroutine);

// ---- the headline table ------------------------------------------------------------------------

struct Goal {
  const char* name;
  double max_ratio;  // 0: no goal
};
constexpr Goal kRows[] = {
    {"BM_PlainCall", 0},          {"BM_VirtualCall", 0},          {"BM_SyncMsg", 1.5},
    {"BM_SyncMsgConcrete", 1.25}, {"BM_SendMsgSync", 0},          {"BM_AsyncMsg", 15},
    {"BM_AsyncMsgQueuePort", 0},  {"BM_PlainCallInCoroutine", 0},
};

class TableReporter final : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      const std::string& fn = r.run_name.function_name;
      double ns = r.GetAdjustedRealTime() * to_ns(r.time_unit);
      if (r.run_type == Run::RT_Aggregate) {
        if (r.aggregate_name == "median") median_[fn] = ns;
      } else {
        single_[fn].push_back(ns);
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    auto value = [&](const std::string& fn, double& out) {
      if (auto it = median_.find(fn); it != median_.end()) return out = it->second, true;
      if (auto it = single_.find(fn); it != single_.end() && !it->second.empty()) {
        return out = it->second.back(), true;
      }
      return false;
    };
    double base = 0;
    if (!value("BM_PlainCall", base) || base <= 0) return;
    double in_coro = 0;
    value("BM_PlainCallInCoroutine", in_coro);
    std::printf("\nmsgport: a co_await-ed message vs a plain function call (%s, one run)\n\n",
                median_.empty() ? "single measurement" : "medians");
    std::printf("  %-24s %8s %12s %14s   %s\n", "benchmark", "ns/op", "x PlainCall",
                "x call in coro", "goal (x PlainCall)");
    std::printf("  %-24s %8s %12s %14s   %s\n", "------------------------", "--------",
                "------------", "--------------", "------------------");
    for (const Goal& g : kRows) {
      double ns = 0;
      if (!value(g.name, ns)) continue;
      double ratio = ns / base;
      char goal[32] = "";
      if (g.max_ratio > 0) {
        std::snprintf(goal, sizeof goal, "<= %.3g  %s", g.max_ratio,
                      ratio <= g.max_ratio ? "met" : "MISSED");
      }
      char coro[32] = "";
      if (in_coro > 0) std::snprintf(coro, sizeof coro, "%.2f", ns / in_coro);
      std::printf("  %-24s %8.2f %12.2f %14s   %s\n", g.name, ns, ratio, coro, goal);
    }
    std::printf(
        "\n  x call in coro: the ratio to BM_PlainCallInCoroutine, the same call made from a\n"
        "  coroutine loop like the messages' own (the coroutine frame's share taken out).\n\n");
  }

 private:
  static double to_ns(benchmark::TimeUnit u) {
    switch (u) {
      case benchmark::kNanosecond:
        return 1;
      case benchmark::kMicrosecond:
        return 1e3;
      case benchmark::kMillisecond:
        return 1e6;
      case benchmark::kSecond:
        return 1e9;
    }
    return 1;
  }
  std::map<std::string, double> median_;
  std::map<std::string, std::vector<double>> single_;
};

}  // namespace
}  // namespace msgport

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  bool reps_given = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--benchmark_repetitions", 23) == 0) reps_given = true;
  }
  static char reps[] = "--benchmark_repetitions=5";
  static char aggregates[] = "--benchmark_report_aggregates_only=true";
  if (!reps_given) {
    args.push_back(reps);
    args.push_back(aggregates);
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  msgport::TableReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
