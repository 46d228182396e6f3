// Review of Mutex, Semaphore and Channel<T> (runtime/mutex.h, runtime/semaphore.h,
// runtime/channel.h): each test asserts one rule of their contracts that a bug found in review
// broke. Every wait is bounded (the per-test watchdog, and explicit deadlines below).
#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/channel.h>
#include <msgport/runtime/mutex.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/semaphore.h>
#include <msgport/runtime/timer.h>
#include <msgport/runtime/yield.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <new>
#include <optional>
#include <stdexcept>
#include <thread>

#include "tests/test_support.h"

namespace msgport {
namespace {

RuntimeOptions two_cores() {
  RuntimeOptions o;
  o.cores = 2;
  return o;
}

// A thread parked in lock_until (its deadline's timer armed on its core) whose handle outlives
// the runtime: its frame goes with the handle, after the cores are gone, and must not touch its
// core's timers then (ASan: heap-use-after-free in Core::disarm).
TEST(SyncReviewTest, WaiterWithADeadlineOutlivingTheRuntimeLeavesTheCoreAlone) {
  Mutex mu;  // outlives the handle
  Semaphore sem(0);
  ASSERT_TRUE(mu.try_lock());
  JoinHandle<void> locker, acquirer;
  {
    Runtime rt(two_cores());
    locker = rt.spawn(0, [&](LwThread&) -> Task<void> {
      if (co_await mu.lock_until(absl::Now() + absl::Hours(1))) ADD_FAILURE() << "granted";
    });
    acquirer = rt.spawn(1, [&](LwThread&) -> Task<void> {
      if (co_await sem.acquire_until(1, absl::Now() + absl::Hours(1))) ADD_FAILURE() << "granted";
    });
    while (mu.waiters() != 1 || sem.waiters() != 1) std::this_thread::yield();
    rt.stop(StopMode::kCancel);
  }
  locker = {};  // the frames go now, with the runtime gone
  acquirer = {};
  EXPECT_EQ(mu.waiters(), 0u);
  EXPECT_EQ(sem.waiters(), 0u);
  mu.unlock();
}

// =================================================================================================
// Misuse fails loudly: the blocking forms are for plain threads. On a core they would block the
// core, and with it whoever must unlock (here: nobody ever, until the test gives up).

template <class F>
void expect_logic_error_on_a_core(F call, void (*unblock)()) {
  Runtime rt(two_cores());
  std::atomic<int> outcome{0};  // 1: threw logic_error, 2: returned
  auto t = rt.spawn(0, [&](LwThread&) -> Task<void> {
    try {
      call();
      outcome.store(2);
    } catch (const std::logic_error&) {
      outcome.store(1);
    }
    co_return;
  });
  absl::Time give_up = absl::Now() + absl::Seconds(2);
  while (outcome.load() == 0 && absl::Now() < give_up) std::this_thread::yield();
  int seen = outcome.load();
  if (seen == 0) unblock();  // it blocked the core: let it go so that the runtime can stop
  t.join();
  EXPECT_EQ(seen, 1) << "a blocking wait on a core must throw std::logic_error, not block it";
  rt.stop();
}

Mutex g_mu;
Semaphore g_sem(0);
Channel<int> g_ch(0);

TEST(SyncReviewTest, BlockingFormsOnACoreThrow) {
  ASSERT_TRUE(g_mu.try_lock());
  expect_logic_error_on_a_core([] { g_mu.lock_blocking(); }, [] { g_mu.unlock(); });
  if (g_mu.locked()) g_mu.unlock();
  expect_logic_error_on_a_core([] { g_sem.acquire_blocking(1); }, [] { g_sem.release(1); });
  expect_logic_error_on_a_core([] { (void)g_ch.send_blocking(1); },
                               [] { (void)g_ch.recv_blocking(); });
  expect_logic_error_on_a_core([] { (void)g_ch.recv_blocking(); },
                               [] { (void)g_ch.send_blocking(1); });
}

}  // namespace
}  // namespace msgport
