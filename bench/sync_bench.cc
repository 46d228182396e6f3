// bench/sync_bench.cc — Mutex and Channel<T> (runtime/mutex.h, runtime/channel.h) against what
// people use without the runtime, and against the runtime's own message round trips.
//
//   BM_MutexUncontended         co_await lock() + unlock() on a free Mutex, in a lightweight thread
//   BM_StdMutexUncontended      std::mutex lock() + unlock() on a free mutex
//   BM_MutexContended           a lightweight thread on each of 2 cores locking and unlocking one
//                               Mutex (FIFO hand-off: every lock waits for the other core); time
//                               per lock + unlock on core 0
//   BM_StdMutexContended        the same with std::mutex between 2 pinned OS threads (it lets a
//                               thread take the lock again at once: no hand-off)
//   BM_ChannelThroughputCross   core 1 sends ints into a Channel(1024), core 0 receives (items/s)
//   BM_ChannelThroughputSame    the same with the producer on core 0 as well
//   BM_ChannelPingPongCross     core 0 sends on one Channel(1), core 1 receives and sends back on
//                               another: one round trip per iteration
//   BM_ChannelPingPongSame      the same with both on core 0
//   BM_CrossCoreRoundTrip       do_msg to a thread port on the other core and back (as in
//                               runtime_bench), for the ping-pong to compare with
//   BM_SameCoreRoundTrip        the same on one core
//
// Everything runs on a 2-core Runtime (cores pinned to the first two allowed CPUs); loops run in a
// coroutine on core 0 and are timed in real time.
#include <benchmark/benchmark.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/channel.h>
#include <msgport/runtime/mutex.h>
#include <msgport/runtime/runtime.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>

#include "bench_common.h"

namespace msgport {
namespace {

RuntimeOptions two_cores() {
  RuntimeOptions o;
  o.cores = 2;
  return o;
}

// ---- Mutex -------------------------------------------------------------------------------------

Task<void> mutex_loop(benchmark::State& state, Mutex& mu, long& counter) {
  for (auto _ : state) {
    co_await mu.lock();
    ++counter;
    mu.unlock();
  }
}

void BM_MutexUncontended(benchmark::State& state) {
  Runtime rt(two_cores());
  Mutex mu;
  long counter = 0;
  rt.block_on(mutex_loop(state, mu, counter));
  benchmark::DoNotOptimize(counter);
  rt.stop();
}
BENCHMARK(BM_MutexUncontended)->UseRealTime();

void BM_StdMutexUncontended(benchmark::State& state) {
  std::mutex mu;
  long counter = 0;
  for (auto _ : state) {
    mu.lock();
    ++counter;
    mu.unlock();
  }
  benchmark::DoNotOptimize(counter);
}
BENCHMARK(BM_StdMutexUncontended)->UseRealTime();

void BM_MutexContended(benchmark::State& state) {
  Runtime rt(two_cores());
  Mutex mu;
  long counter = 0;  // under mu
  std::atomic<bool> stop{false};
  std::atomic<long> other_rounds{0};
  auto other = rt.spawn(1, [&](LwThread&) -> Task<void> {
    long n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      co_await mu.lock();
      ++counter;
      mu.unlock();
      ++n;
    }
    other_rounds.store(n);
  });
  rt.block_on(mutex_loop(state, mu, counter));
  stop.store(true);
  other.join();
  state.counters["other_core_per_iter"] =
      static_cast<double>(other_rounds.load()) / static_cast<double>(state.iterations());
  rt.stop();
}
BENCHMARK(BM_MutexContended)->UseRealTime();

void pin(int cpu) {
  cpu_set_t allowed;
  sched_getaffinity(0, sizeof allowed, &allowed);
  int seen = 0;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (!CPU_ISSET(c, &allowed)) continue;
    if (seen++ == cpu) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(c, &set);
      pthread_setaffinity_np(pthread_self(), sizeof set, &set);
      return;
    }
  }
}

void BM_StdMutexContended(benchmark::State& state) {
  cpu_set_t saved;
  pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
  std::mutex mu;
  long counter = 0;
  std::atomic<bool> stop{false};
  long other_rounds = 0;
  std::thread other([&] {
    pin(1);
    long n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      mu.lock();
      ++counter;
      mu.unlock();
      ++n;
    }
    other_rounds = n;
  });
  pin(0);
  for (auto _ : state) {
    mu.lock();
    ++counter;
    mu.unlock();
  }
  stop.store(true);
  other.join();
  pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
  benchmark::DoNotOptimize(counter);
  state.counters["other_core_per_iter"] =
      static_cast<double>(other_rounds) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_StdMutexContended)->UseRealTime();

// ---- Channel -----------------------------------------------------------------------------------

Task<void> recv_loop(benchmark::State& state, Channel<long>& ch) {
  long sum = 0;
  for (auto _ : state) {
    std::optional<long> v = co_await ch.recv();
    sum += *v;
  }
  benchmark::DoNotOptimize(sum);
  ch.close();
  state.SetItemsProcessed(state.iterations());
}

void channel_throughput(benchmark::State& state, int producer_core) {
  Runtime rt(two_cores());
  Channel<long> ch(1024);
  auto producer = rt.spawn(producer_core, [&](LwThread&) -> Task<void> {
    for (long i = 0;; ++i) {
      if (co_await ch.send(i) != 0) break;  // closed
    }
  });
  rt.block_on(recv_loop(state, ch));
  producer.join();
  rt.stop();
}

void BM_ChannelThroughputCross(benchmark::State& state) { channel_throughput(state, 1); }
BENCHMARK(BM_ChannelThroughputCross)->UseRealTime();

void BM_ChannelThroughputSame(benchmark::State& state) { channel_throughput(state, 0); }
BENCHMARK(BM_ChannelThroughputSame)->UseRealTime();

Task<void> ping_loop(benchmark::State& state, Channel<long>& ping, Channel<long>& pong) {
  long i = 0;
  for (auto _ : state) {
    co_await ping.send(i++);
    std::optional<long> v = co_await pong.recv();
    benchmark::DoNotOptimize(v);
  }
  ping.close();
}

void channel_ping_pong(benchmark::State& state, int echo_core) {
  Runtime rt(two_cores());
  Channel<long> ping(1), pong(1);
  auto echo = rt.spawn(echo_core, [&](LwThread&) -> Task<void> {
    for (;;) {
      std::optional<long> v = co_await ping.recv();
      if (!v) break;
      co_await pong.send(*v + 1);
    }
  });
  rt.block_on(ping_loop(state, ping, pong));
  echo.join();
  rt.stop();
}

void BM_ChannelPingPongCross(benchmark::State& state) { channel_ping_pong(state, 1); }
BENCHMARK(BM_ChannelPingPongCross)->UseRealTime();

void BM_ChannelPingPongSame(benchmark::State& state) { channel_ping_pong(state, 0); }
BENCHMARK(BM_ChannelPingPongSame)->UseRealTime();

// ---- the message round trips to compare with
// -----------------------------------------------------

Task<void> echo_server(LwThread& self) { return bench::serve_loop(self.port()); }

void round_trips(benchmark::State& state, int server_core) {
  Runtime rt(two_cores());
  auto server = rt.spawn(server_core, echo_server);
  rt.block_on(bench::do_msg_loop(state, server.port()));
  rt.stop(StopMode::kCancel);
}

void BM_CrossCoreRoundTrip(benchmark::State& state) { round_trips(state, 1); }
BENCHMARK(BM_CrossCoreRoundTrip)->UseRealTime();

void BM_SameCoreRoundTrip(benchmark::State& state) { round_trips(state, 0); }
BENCHMARK(BM_SameCoreRoundTrip)->UseRealTime();

}  // namespace
}  // namespace msgport

BENCHMARK_MAIN();
