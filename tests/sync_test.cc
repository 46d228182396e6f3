// Mutex, Semaphore and Channel<T> (runtime/mutex.h, runtime/semaphore.h, runtime/channel.h),
// rule by rule: exclusion and FIFO hand-off across cores, try_*, inline grants, waiters resumed
// on their own core, aborts and deadlines racing grants (never lost, never granted twice), close
// waking every waiter, no value lost or duplicated across cores, threads cancelled while they
// wait, and misuse that fails loudly.
//
// Every wait is bounded: by the per-test watchdog (tests/test_main.cc), and the loops that poll
// for a state yield to their core.
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
#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_support.h"

namespace msgport {
namespace {

using testing::stress;

RuntimeOptions two_cores() {
  RuntimeOptions o;
  o.cores = 2;
  return o;
}

int core_id() { return Core::current() != nullptr ? Core::current()->id() : -1; }

// Yields to the core until pred() holds.
template <class Pred>
Task<void> until(Pred pred) {
  while (!pred()) co_await yield_now();
}

// =================================================================================================
// Mutex

TEST(MutexTest, FreeMutexIsGrantedInlineAsAMessage) {
  Mutex mu;
  Message m;
  // A lock request is a message; the agent grants a free mutex at once.
  DoMsg d = do_msg(mu, m);
  EXPECT_TRUE(m.done());
  EXPECT_EQ(m.result(), 0);
  EXPECT_TRUE(mu.locked());
  EXPECT_FALSE(mu.try_lock());
  mu.unlock();
  EXPECT_FALSE(mu.locked());
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
}

TEST(MutexTest, LockDoesNotSuspendWhenFree) {
  Runtime rt(two_cores());
  Mutex mu;
  std::uint64_t resumed_before = 0, resumed_after = 0;
  rt.block_on([&]() -> Task<void> {
    resumed_before = this_core().counters().resumed;
    for (int i = 0; i < 100; ++i) {
      co_await mu.lock();
      mu.unlock();
      MutexGuard g = co_await mu.scoped_lock();
      EXPECT_TRUE(g.owns_lock());
    }
    resumed_after = this_core().counters().resumed;
  }());
  EXPECT_EQ(resumed_before, resumed_after);  // no suspension: the core resumed nothing
  EXPECT_FALSE(mu.locked());
  rt.stop();
}

TEST(MutexTest, UnlockHandsOverInFifoOrderAcrossCores) {
  Runtime rt(two_cores());
  Mutex mu;
  std::vector<int> order;  // written under mu only
  ASSERT_TRUE(mu.try_lock());
  std::vector<JoinHandle<int>> waiters;
  constexpr int kWaiters = 6;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(rt.spawn(i % 2, [&, i](LwThread&) -> Task<int> {
      co_await mu.lock();
      order.push_back(i);
      int where = core_id();
      mu.unlock();
      co_return where;
    }));
    // One at a time into the queue, so the queue's order is known.
    while (mu.waiters() != static_cast<std::size_t>(i + 1)) std::this_thread::yield();
  }
  // Handed over, never free: try_lock cannot barge in ahead of the waiters.
  mu.unlock();  // from a plain thread: allowed
  for (int i = 0; i < kWaiters; ++i) EXPECT_EQ(waiters[i].join(), i % 2) << i;  // own core
  ASSERT_EQ(order.size(), static_cast<std::size_t>(kWaiters));
  for (int i = 0; i < kWaiters; ++i) EXPECT_EQ(order[i], i);
  EXPECT_FALSE(mu.locked());
  rt.stop();
}

TEST(MutexTest, TryLockNeverBargesAheadOfWaiters) {
  Runtime rt(two_cores());
  Mutex mu;
  std::atomic<bool> release{false};
  ASSERT_TRUE(mu.try_lock());
  auto waiter = rt.spawn(1, [&](LwThread&) -> Task<void> {
    co_await mu.lock();
    co_await until([&] { return release.load(); });
    mu.unlock();
  });
  while (mu.waiters() != 1) std::this_thread::yield();
  EXPECT_FALSE(mu.try_lock());  // locked, and a request waits
  mu.unlock();                  // handed to the waiter: never free in between
  EXPECT_FALSE(mu.try_lock());
  EXPECT_TRUE(mu.locked());
  release.store(true);
  waiter.join();
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
  rt.stop();
}

// A counter without atomics, incremented under the mutex by lightweight threads on both cores,
// some of which suspend while they hold it. ThreadSanitizer checks the hand-off's ordering.
TEST(MutexTest, MutualExclusionUnderContentionOnAllCores) {
  Runtime rt(two_cores());
  Mutex mu;
  long counter = 0;
  int inside = 0;  // also plain: more than one holder at a time would show
  int overlaps = 0;
  const int kThreads = 8;
  const int kRounds = stress(4000, 500);
  std::vector<JoinHandle<void>> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.push_back(rt.spawn(t % 2, [&, t](LwThread&) -> Task<void> {
      for (int i = 0; i < kRounds; ++i) {
        if ((i + t) % 3 == 0) {
          MutexGuard g = co_await mu.scoped_lock();
          if (++inside != 1) ++overlaps;
          long c = counter;
          if (i % 7 == 0) co_await yield_now();  // suspend while holding it
          counter = c + 1;
          --inside;
        } else if ((i + t) % 3 == 1 && mu.try_lock()) {
          if (++inside != 1) ++overlaps;
          ++counter;
          --inside;
          mu.unlock();
        } else {
          co_await mu.lock();
          if (++inside != 1) ++overlaps;
          ++counter;
          --inside;
          mu.unlock();
        }
      }
    }));
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, static_cast<long>(kThreads) * kRounds);
  EXPECT_EQ(overlaps, 0);
  EXPECT_FALSE(mu.locked());
  EXPECT_EQ(mu.waiters(), 0u);
  rt.stop();
}

TEST(MutexTest, PlainThreadsAndLightweightThreadsShareIt) {
  Runtime rt(two_cores());
  Mutex mu;
  long counter = 0;
  const int kRounds = stress(2000, 300);
  auto lw = rt.spawn(1, [&](LwThread&) -> Task<void> {
    for (int i = 0; i < kRounds; ++i) {
      co_await mu.lock();
      ++counter;
      mu.unlock();
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    mu.lock_blocking();
    ++counter;
    mu.unlock();
  }
  lw.join();
  EXPECT_EQ(counter, 2L * kRounds);
  rt.stop();
}

TEST(MutexTest, AbortedWaiterIsNeverGrantedAndTheLockIsNotLost) {
  Runtime rt(two_cores());
  Mutex mu;
  ASSERT_TRUE(mu.try_lock());
  int r = rt.block_on([&]() -> Task<int> {
    Message m;
    m.set_abortable(true);
    DoMsg pending = do_msg(mu, m);
    EXPECT_FALSE(m.done());
    EXPECT_EQ(mu.waiters(), 1u);
    abort_msg(m);  // from the sender's core: still queued, so cancelled
    EXPECT_TRUE(m.done());
    co_return co_await pending;
  }());
  EXPECT_EQ(r, -ECANCELED);
  EXPECT_EQ(mu.waiters(), 0u);
  mu.unlock();  // nobody to hand it to: free
  EXPECT_FALSE(mu.locked());
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
  rt.stop();
}

TEST(MutexTest, DeadlinePassesWhileWaiting) {
  Runtime rt(two_cores());
  Mutex mu;
  ASSERT_TRUE(mu.try_lock());
  auto [got, r] = rt.block_on([&]() -> Task<std::pair<bool, int>> {
    bool got = co_await mu.lock_until(absl::Now() + absl::Milliseconds(3));
    Message m;
    int r = co_await do_msg_until(mu, m, absl::Now() + absl::Milliseconds(3));
    co_return std::pair{got, r};
  }());
  EXPECT_FALSE(got);
  EXPECT_EQ(r, -ETIMEDOUT);
  EXPECT_EQ(mu.waiters(), 0u);
  mu.unlock();
  EXPECT_FALSE(mu.locked());  // neither timed-out request was granted later
  // A deadline already passed: granted if free, else false at once.
  bool free_past = rt.block_on([&]() -> Task<bool> {
    bool ok = co_await mu.lock_until(absl::Now() - absl::Seconds(1));
    if (ok) mu.unlock();
    co_return ok;
  }());
  EXPECT_TRUE(free_past);
  ASSERT_TRUE(mu.try_lock());
  bool held_past = rt.block_on(
      [&]() -> Task<bool> { co_return co_await mu.lock_until(absl::Now() - absl::Seconds(1)); }());
  EXPECT_FALSE(held_past);
  mu.unlock();
  rt.stop();
}

// Grants from the other core race the waiters' deadlines: every request ends exactly once,
// granted (and then held, exclusively) or timed out (and never granted later).
TEST(MutexTest, GrantRacingDeadlineNeverLosesOrDoublesTheLock) {
  Runtime rt(two_cores());
  Mutex mu;
  int inside = 0;
  int overlaps = 0;
  std::atomic<long> granted{0}, timed_out{0};
  const int kRounds = stress(3000, 400);
  auto holder = rt.spawn(1, [&](LwThread&) -> Task<void> {
    for (int i = 0; i < kRounds; ++i) {
      co_await mu.lock();
      if (++inside != 1) ++overlaps;
      for (int k = 0; k < (i % 50) * 20; ++k) asm volatile("" ::: "memory");
      --inside;
      mu.unlock();
      if (i % 4 == 0) co_await yield_now();
    }
  });
  std::vector<JoinHandle<void>> waiters;
  for (int w = 0; w < 2; ++w) {
    waiters.push_back(rt.spawn(0, [&, w](LwThread&) -> Task<void> {
      for (int i = 0; i < kRounds; ++i) {
        absl::Duration d = absl::Microseconds((i * 7 + w * 13) % 40);
        bool ok = co_await mu.lock_until(absl::Now() + d);
        if (ok) {
          if (++inside != 1) ++overlaps;
          --inside;
          granted.fetch_add(1);
          mu.unlock();
        } else {
          timed_out.fetch_add(1);
        }
      }
    }));
  }
  for (auto& w : waiters) w.join();
  holder.join();
  EXPECT_EQ(overlaps, 0);
  EXPECT_EQ(granted.load() + timed_out.load(), 2L * kRounds);
  EXPECT_EQ(mu.waiters(), 0u);
  EXPECT_FALSE(mu.locked());
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
  rt.stop();
}

TEST(MutexTest, ThreadCancelledWhileWaitingLeavesTheQueue) {
  Mutex mu;  // outlives the runtime
  ASSERT_TRUE(mu.try_lock());
  {
    Runtime rt(two_cores());
    auto waiter = rt.spawn(1, [&](LwThread&) -> Task<void> {
      co_await mu.lock();
      ADD_FAILURE() << "granted a mutex that is never unlocked";
      mu.unlock();
    });
    while (mu.waiters() != 1) std::this_thread::yield();
    rt.stop(StopMode::kCancel);
    EXPECT_THROW(waiter.join(), ThreadCancelled);
  }
  EXPECT_EQ(mu.waiters(), 0u);
  mu.unlock();
  EXPECT_FALSE(mu.locked());
}

// stop(kCancel) destroys a holder parked with a guard, and a waiter: the guard's unlock hands the
// mutex to the waiter, whose core has stopped; the waiter's frame gives the grant back.
TEST(MutexTest, CancelledHolderAndWaiterLeaveItUnlocked) {
  // Both orders of destruction: the runtime destroys threads in the order they were spawned.
  for (bool waiter_first : {true, false}) {
    Mutex mu;
    {
      Runtime rt(two_cores());
      auto holder_fn = [&](LwThread&) -> Task<void> {
        MutexGuard g = co_await mu.scoped_lock();
        co_await sleep_for(absl::Hours(1));
      };
      auto waiter_fn = [&](LwThread&) -> Task<void> {
        co_await until([&] { return mu.locked(); });
        co_await mu.lock();
        ADD_FAILURE() << "ran after stop(kCancel)";
        mu.unlock();
      };
      JoinHandle<void> a, b;
      if (waiter_first) {
        a = rt.spawn(1, waiter_fn);
        b = rt.spawn(0, holder_fn);
      } else {
        a = rt.spawn(0, holder_fn);
        b = rt.spawn(1, waiter_fn);
      }
      while (mu.waiters() != 1) std::this_thread::yield();
      rt.stop(StopMode::kCancel);
    }
    EXPECT_EQ(mu.waiters(), 0u) << waiter_first;
    EXPECT_FALSE(mu.locked()) << waiter_first;
    EXPECT_TRUE(mu.try_lock());
    mu.unlock();
  }
}

TEST(MutexDeathTest, UnlockingAnUnlockedMutexFailsLoudly) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Mutex mu;
        mu.unlock();
      },
      "broken rule: Mutex::unlock: the mutex is not locked");
  EXPECT_DEATH(
      {
        Mutex mu;
        mu.lock_blocking();
        mu.unlock();
        mu.unlock();
      },
      "broken rule: Mutex::unlock: the mutex is not locked");
}

TEST(MutexDeathTest, DestroyedWhileRequestsWaitFailsLoudly) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto mu = std::make_unique<Mutex>();
        ASSERT_TRUE(mu->try_lock());
        Message m;
        send_msg(*mu, m);  // queued
        mu.reset();
      },
      "broken rule: a Mutex was destroyed while lock requests wait");
}

// =================================================================================================
// Semaphore

TEST(SemaphoreTest, TryAcquireAndRelease) {
  Semaphore sem(3);
  EXPECT_TRUE(sem.try_acquire(2));
  EXPECT_FALSE(sem.try_acquire(2));
  EXPECT_TRUE(sem.try_acquire(1));
  EXPECT_FALSE(sem.try_acquire());
  EXPECT_TRUE(sem.try_acquire(0));
  sem.release(3);
  EXPECT_EQ(sem.available(), 3);
  Semaphore::AcquireMsg m(3);
  DoMsg d = do_msg(sem, m);  // granted inline
  EXPECT_TRUE(m.done());
  EXPECT_EQ(sem.available(), 0);
  sem.release(3);
}

TEST(SemaphoreTest, FifoALargeHeadHoldsBackSmallerRequests) {
  Runtime rt(two_cores());
  Semaphore sem(0);
  std::vector<int> order;
  std::mutex order_mu;
  std::vector<std::int64_t> asks = {3, 1, 2};
  std::vector<JoinHandle<int>> ws;
  for (int i = 0; i < 3; ++i) {
    ws.push_back(rt.spawn(i % 2, [&, i](LwThread&) -> Task<int> {
      co_await sem.acquire(asks[i]);
      {
        std::lock_guard l(order_mu);
        order.push_back(i);
      }
      co_return core_id();
    }));
    while (sem.waiters() != static_cast<std::size_t>(i + 1)) std::this_thread::yield();
  }
  sem.release(2);  // covers 1 and 2, but 3 is at the head: nobody goes
  EXPECT_EQ(sem.waiters(), 3u);
  EXPECT_FALSE(sem.try_acquire(1));  // no barging past waiters either
  sem.release(1);                    // 3 -> the head goes; 0 left
  EXPECT_EQ(ws[0].join(), 0);
  EXPECT_EQ(sem.waiters(), 2u);
  sem.release(2);  // the head (1) goes; 1 left, not enough for the next (2)
  EXPECT_EQ(ws[1].join(), 1);
  EXPECT_EQ(sem.waiters(), 1u);
  EXPECT_EQ(sem.available(), 1);
  sem.release(1);
  EXPECT_EQ(ws[2].join(), 0);
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(sem.available(), 0);
  rt.stop();
}

TEST(SemaphoreTest, AbortedHeadLetsTheOthersThroughAndKeepsThePermits) {
  Runtime rt(two_cores());
  Semaphore sem(2);
  auto r = rt.block_on([&]() -> Task<std::pair<int, bool>> {
    Semaphore::AcquireMsg big(5);
    DoMsg pending = do_msg(sem, big);  // queued: 2 < 5
    Semaphore::AcquireMsg small(1);
    DoMsg behind = do_msg(sem, small);  // queued behind big, though a permit is there
    EXPECT_FALSE(small.done());
    bool timed = co_await sem.acquire_until(1, absl::Now() + absl::Milliseconds(2));
    EXPECT_FALSE(timed);  // behind big as well; its deadline passed
    abort_msg(big);       // not abortable: only recorded...
    EXPECT_FALSE(big.done());
    Semaphore::AcquireMsg big2(5);
    int t = co_await do_msg_until(sem, big2, absl::Now() + absl::Milliseconds(2));
    EXPECT_EQ(t, -ETIMEDOUT);
    sem.release(3);  // 5 now: big goes, small waits again (0 left)
    EXPECT_EQ(co_await pending, 0);
    EXPECT_FALSE(small.done());
    sem.release(5);
    EXPECT_EQ(co_await behind, 0);
    co_return std::pair{t, timed};
  }());
  EXPECT_EQ(r.first, -ETIMEDOUT);
  EXPECT_EQ(sem.available(), 4);
  EXPECT_EQ(sem.waiters(), 0u);
  // An aborted head: the request behind it is granted at once.
  sem.release(1);  // 5
  rt.block_on([&]() -> Task<void> {
    Semaphore::AcquireMsg big(9);
    big.set_abortable(true);
    DoMsg pending = do_msg(sem, big);
    Semaphore::AcquireMsg small(2);
    DoMsg behind = do_msg(sem, small);
    EXPECT_FALSE(small.done());
    abort_msg(big);
    EXPECT_EQ(co_await pending, -ECANCELED);
    EXPECT_TRUE(small.done());
    EXPECT_EQ(co_await behind, 0);
  }());
  EXPECT_EQ(sem.available(), 3);  // big took nothing
  rt.stop();
}

TEST(SemaphoreTest, NeverMoreHoldersThanPermitsAcrossCores) {
  Runtime rt(two_cores());
  constexpr int kPermits = 3;
  Semaphore sem(kPermits);
  std::atomic<int> inside{0};
  std::atomic<int> max_inside{0};
  std::atomic<long> timeouts{0};
  const int kRounds = stress(2000, 300);
  std::vector<JoinHandle<void>> ts;
  for (int t = 0; t < 8; ++t) {
    ts.push_back(rt.spawn(t % 2, [&, t](LwThread&) -> Task<void> {
      for (int i = 0; i < kRounds; ++i) {
        std::int64_t n = 1 + (i + t) % 2;
        if (i % 5 == 0) {
          if (!co_await sem.acquire_until(n, absl::Now() + absl::Microseconds(i % 30))) {
            timeouts.fetch_add(1);
            continue;
          }
        } else if (i % 5 == 1) {
          if (!sem.try_acquire(n)) continue;
        } else {
          co_await sem.acquire(n);
        }
        int now = inside.fetch_add(static_cast<int>(n)) + static_cast<int>(n);
        int m = max_inside.load();
        while (now > m && !max_inside.compare_exchange_weak(m, now)) {
        }
        if (i % 3 == 0) co_await yield_now();
        inside.fetch_sub(static_cast<int>(n));
        sem.release(n);
      }
    }));
  }
  for (auto& t : ts) t.join();
  EXPECT_LE(max_inside.load(), kPermits);
  EXPECT_EQ(sem.available(), kPermits);  // no permit lost or made up
  EXPECT_EQ(sem.waiters(), 0u);
  rt.stop();
}

TEST(SemaphoreDeathTest, DestroyedWhileRequestsWaitFailsLoudly) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto sem = std::make_unique<Semaphore>(0);
        Semaphore::AcquireMsg m(1);
        send_msg(*sem, m);
        sem.reset();
      },
      "broken rule: a Semaphore was destroyed while acquire requests wait");
}

// =================================================================================================
// Channel

TEST(ChannelTest, BufferedSendAndReceiveCompleteInline) {
  Channel<std::unique_ptr<int>> ch(2);  // move-only values: never copied
  EXPECT_EQ(ch.try_send(std::make_unique<int>(1)), 0);
  EXPECT_EQ(ch.try_send(std::make_unique<int>(2)), 0);
  auto three = std::make_unique<int>(3);
  EXPECT_EQ(ch.try_send(std::move(three)), -EAGAIN);
  ASSERT_NE(three, nullptr);  // left as it was
  EXPECT_EQ(ch.size(), 2u);
  std::optional<std::unique_ptr<int>> v = ch.try_recv();
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(**v, 1);
  Channel<std::unique_ptr<int>>::SendMsg s(std::move(three));
  DoMsg d = do_msg(ch, s);  // room: inline
  EXPECT_TRUE(s.done());
  EXPECT_EQ(s.result(), 0);
  Channel<std::unique_ptr<int>>::RecvMsg r;
  DoMsg dr = do_msg(ch, r);
  EXPECT_TRUE(r.done());
  EXPECT_EQ(**r.value, 2);
  EXPECT_EQ(**ch.try_recv(), 3);
  EXPECT_FALSE(ch.try_recv().has_value());
  ch.close();
  EXPECT_EQ(ch.try_send(std::make_unique<int>(4)), -EPIPE);
}

TEST(ChannelTest, FullSuspendsSendersEmptySuspendsReceivers) {
  Runtime rt(two_cores());
  Channel<int> ch(1);
  auto producer = rt.spawn(1, [&](LwThread&) -> Task<int> {
    int sent = 0;
    for (int i = 0; i < 3; ++i) sent += (co_await ch.send(i)) == 0;
    co_return sent;
  });
  while (ch.waiting_senders() != 1) std::this_thread::yield();  // 0 buffered, 1 waits
  EXPECT_EQ(ch.size(), 1u);
  auto consumer = rt.spawn(0, [&](LwThread&) -> Task<std::vector<int>> {
    std::vector<int> got;
    for (int i = 0; i < 4; ++i) {
      std::optional<int> v = co_await ch.recv();
      if (!v) break;
      got.push_back(*v);
    }
    co_return got;
  });
  EXPECT_EQ(producer.join(), 3);
  while (ch.waiting_receivers() != 1) std::this_thread::yield();  // the 4th receive waits
  ch.close();
  EXPECT_EQ(consumer.join(), (std::vector<int>{0, 1, 2}));
  rt.stop();
}

TEST(ChannelTest, CapacityZeroIsARendezvous) {
  Runtime rt(two_cores());
  Channel<std::string> ch(0);
  EXPECT_EQ(ch.try_send("x"), -EAGAIN);  // nobody waits to receive
  auto producer = rt.spawn(1, [&](LwThread&) -> Task<void> {
    for (int i = 0; i < 50; ++i) EXPECT_EQ(co_await ch.send(std::to_string(i)), 0);
    ch.close();
  });
  std::vector<std::string> got = rt.block_on([&]() -> Task<std::vector<std::string>> {
    std::vector<std::string> got;
    for (;;) {
      std::optional<std::string> v = co_await ch.recv();
      if (!v) break;
      got.push_back(std::move(*v));
    }
    co_return got;
  }());
  producer.join();
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[i], std::to_string(i));
  EXPECT_EQ(ch.size(), 0u);
  rt.stop();
}

TEST(ChannelTest, CloseWakesEveryWaiterAndReceiversDrainFirst) {
  Runtime rt(two_cores());
  // Waiting receivers on both cores.
  Channel<int> empty(4);
  std::vector<JoinHandle<bool>> receivers;
  for (int i = 0; i < 4; ++i) {
    receivers.push_back(rt.spawn(i % 2, [&](LwThread&) -> Task<bool> {
      std::optional<int> v = co_await empty.recv();
      co_return v.has_value();
    }));
  }
  while (empty.waiting_receivers() != 4) std::this_thread::yield();
  empty.close();
  for (auto& r : receivers) EXPECT_FALSE(r.join());
  // Waiting senders on both cores; buffered values are still received after close.
  Channel<int> full(2);
  EXPECT_EQ(full.try_send(100), 0);
  EXPECT_EQ(full.try_send(101), 0);
  std::vector<JoinHandle<int>> senders;
  for (int i = 0; i < 4; ++i) {
    senders.push_back(
        rt.spawn(i % 2, [&, i](LwThread&) -> Task<int> { co_return co_await full.send(i); }));
  }
  while (full.waiting_senders() != 4) std::this_thread::yield();
  full.close();
  for (auto& s : senders) EXPECT_EQ(s.join(), -EPIPE);
  std::vector<int> drained = rt.block_on([&]() -> Task<std::vector<int>> {
    std::vector<int> got;
    for (;;) {
      std::optional<int> v = co_await full.recv();
      if (!v) break;
      got.push_back(*v);
    }
    EXPECT_EQ(co_await full.send(7), -EPIPE);
    co_return got;
  }());
  EXPECT_EQ(drained, (std::vector<int>{100, 101}));
  full.close();  // twice: harmless
  rt.stop();
}

// Many producers and consumers on both cores; every value is received exactly once, and the
// values one consumer gets from one producer come in the order sent.
TEST(ChannelTest, NoValueLostOrDuplicatedAcrossCores) {
  for (std::size_t capacity : {std::size_t{0}, std::size_t{1}, std::size_t{16}}) {
    Runtime rt(two_cores());
    Channel<std::uint64_t> ch(capacity);
    constexpr int kProducers = 4, kConsumers = 3;
    const int kPerProducer = stress(5000, 600);
    std::vector<JoinHandle<void>> producers;
    for (int p = 0; p < kProducers; ++p) {
      producers.push_back(rt.spawn(p % 2, [&, p](LwThread&) -> Task<void> {
        for (int i = 0; i < kPerProducer; ++i) {
          int r = co_await ch.send((std::uint64_t(p) << 32) | std::uint64_t(i));
          EXPECT_EQ(r, 0);
          if (i % 64 == 0) co_await yield_now();
        }
      }));
    }
    std::vector<JoinHandle<std::vector<std::uint64_t>>> consumers;
    for (int c = 0; c < kConsumers; ++c) {
      consumers.push_back(rt.spawn(c % 2, [&](LwThread&) -> Task<std::vector<std::uint64_t>> {
        std::vector<std::uint64_t> got;
        for (;;) {
          std::optional<std::uint64_t> v = co_await ch.recv();
          if (!v) break;
          got.push_back(*v);
        }
        co_return got;
      }));
    }
    for (auto& p : producers) p.join();
    ch.close();
    std::vector<int> seen(static_cast<std::size_t>(kProducers) * kPerProducer, 0);
    for (auto& c : consumers) {
      std::vector<std::uint64_t> got = c.join();
      std::vector<long> last(kProducers, -1);
      for (std::uint64_t v : got) {
        int p = static_cast<int>(v >> 32);
        long i = static_cast<long>(v & 0xffffffffu);
        ASSERT_LT(p, kProducers);
        ASSERT_LT(i, kPerProducer);
        EXPECT_GT(i, last[p]) << "capacity " << capacity;
        last[p] = i;
        ++seen[static_cast<std::size_t>(p) * kPerProducer + i];
      }
    }
    for (std::size_t k = 0; k < seen.size(); ++k) {
      ASSERT_EQ(seen[k], 1) << "value " << k << " capacity " << capacity;
    }
    rt.stop();
  }
}

TEST(ChannelTest, DeadlinesAndAbortsNeverLoseAValue) {
  Runtime rt(two_cores());
  // A receive that times out on an empty channel gets nothing, and never later.
  Channel<int> ch(1);
  rt.block_on([&]() -> Task<void> {
    Channel<int>::RecvMsg r;
    EXPECT_EQ(co_await do_msg_until(ch, r, absl::Now() + absl::Milliseconds(2)), -ETIMEDOUT);
    EXPECT_FALSE(r.value.has_value());
    EXPECT_EQ(ch.waiting_receivers(), 0u);
    EXPECT_EQ(co_await ch.send(5), 0);  // buffered, not handed to the timed-out receive
    EXPECT_EQ(ch.size(), 1u);
    // A send that times out on a full channel keeps its value.
    Channel<int>::SendMsg s(6);
    EXPECT_EQ(co_await do_msg_until(ch, s, absl::Now() + absl::Milliseconds(2)), -ETIMEDOUT);
    EXPECT_EQ(s.value, 6);
    EXPECT_EQ(ch.waiting_senders(), 0u);
    // abort_msg of a waiting send.
    Channel<int>::SendMsg a(7);
    a.set_abortable(true);
    DoMsg pending = do_msg(ch, a);
    EXPECT_FALSE(a.done());
    abort_msg(a);
    EXPECT_EQ(co_await pending, -ECANCELED);
    EXPECT_EQ(*ch.try_recv(), 5);
    EXPECT_FALSE(ch.try_recv().has_value());
  }());
  // Racing: receives with short deadlines on core 0 against sends with short deadlines on
  // core 1. Every send that succeeded is received once; no other value is.
  Channel<int> race(2);
  const int kRounds = stress(20000, 2000);
  auto producer = rt.spawn(1, [&](LwThread&) -> Task<std::vector<int>> {
    std::vector<int> sent;
    for (int i = 0; i < kRounds; ++i) {
      Channel<int>::SendMsg s(i);
      int r = co_await do_msg_until(race, s, absl::Now() + absl::Microseconds(i % 20));
      if (r == 0) {
        sent.push_back(i);
      } else {
        EXPECT_EQ(r, -ETIMEDOUT);
        EXPECT_EQ(s.value, i);
      }
    }
    race.close();
    co_return sent;
  });
  auto consumer = rt.spawn(0, [&](LwThread&) -> Task<std::vector<int>> {
    std::vector<int> got;
    for (int i = 0;; ++i) {
      Channel<int>::RecvMsg r;
      int res = co_await do_msg_until(race, r, absl::Now() + absl::Microseconds(i % 25));
      if (res == 0) {
        got.push_back(*r.value);
      } else if (res == -EPIPE) {
        break;
      } else {
        EXPECT_EQ(res, -ETIMEDOUT);
        EXPECT_FALSE(r.value.has_value());
      }
    }
    co_return got;
  });
  std::vector<int> sent = producer.join();
  std::vector<int> got = consumer.join();
  EXPECT_EQ(got, sent);  // one producer, one consumer: the same values, in order
  EXPECT_GT(sent.size(), 0u);
  rt.stop();
}

TEST(ChannelTest, ThreadsCancelledWhileWaitingLeaveTheQueues) {
  Channel<std::unique_ptr<int>> full(0), empty(1);
  {
    Runtime rt(two_cores());
    auto sender =
        rt.spawn(1, [&](LwThread&) -> Task<void> { co_await full.send(std::make_unique<int>(1)); });
    auto receiver = rt.spawn(0, [&](LwThread&) -> Task<void> { co_await empty.recv(); });
    while (full.waiting_senders() != 1 || empty.waiting_receivers() != 1) {
      std::this_thread::yield();
    }
    rt.stop(StopMode::kCancel);
  }
  EXPECT_EQ(full.waiting_senders(), 0u);
  EXPECT_EQ(empty.waiting_receivers(), 0u);
  EXPECT_EQ(empty.try_send(std::make_unique<int>(2)), 0);  // not to the receiver that is gone
  EXPECT_EQ(**empty.try_recv(), 2);
}

TEST(ChannelTest, PlainThreadsSendAndReceive) {
  Runtime rt(two_cores());
  Channel<int> ch(4);
  const int kN = stress(5000, 500);
  auto consumer = rt.spawn(1, [&](LwThread&) -> Task<long> {
    long sum = 0;
    for (;;) {
      std::optional<int> v = co_await ch.recv();
      if (!v) break;
      sum += *v;
    }
    co_return sum;
  });
  for (int i = 1; i <= kN; ++i) ASSERT_EQ(ch.send_blocking(i), 0);
  ch.close();
  EXPECT_EQ(consumer.join(), static_cast<long>(kN) * (kN + 1) / 2);
  rt.stop();
}

TEST(ChannelDeathTest, DestroyedWhileRequestsWaitFailsLoudly) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto ch = std::make_unique<Channel<int>>(0);
        Channel<int>::SendMsg m(1);
        send_msg(*ch, m);  // no receiver: waits
        ch.reset();
      },
      "broken rule: a Channel was destroyed while sends or receives wait");
}

}  // namespace
}  // namespace msgport
