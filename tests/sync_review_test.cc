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
#include <cstdint>
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

// Storage for a T whose lifetime ends (in a frame) before the storage's does. At its end a fresh
// T is made in its place, so that a use after the end touches no freed memory but is seen: the
// fresh T changes (a give-back to a fresh Mutex fails loudly: it is not locked; a fresh
// Semaphore gains permits).
template <class T>
struct Afterlife {
  alignas(T) std::byte bytes[sizeof(T)];
  T& get() { return *std::launder(reinterpret_cast<T*>(bytes)); }
  ~Afterlife() { get().~T(); }
};
template <class T>
struct LivesIn {
  template <class... A>
  explicit LivesIn(Afterlife<T>& a, A&&... args) : a_(a) {
    a.get().~T();  // the fresh one the storage began with
    ::new (static_cast<void*>(a.bytes)) T(std::forward<A>(args)...);
  }
  ~LivesIn() {
    a_.get().~T();
    ::new (static_cast<void*>(a_.bytes)) T();
  }
  Afterlife<T>& a_;
};

// =================================================================================================
// stop(kCancel): a primitive that lives in a cancelled thread's frame.
//
// The holder's frame owns the mutex and holds it with a guard; a waiter on the other core waits
// for it. stop(kCancel) destroys the holder first (spawn order): its guard hands the mutex to the
// waiter, whose core has stopped, and then the mutex itself goes. The waiter's frame, destroyed
// next, must not hand the grant back to the mutex that is gone (mutex.h: "one granted the mutex
// when it could no longer run ... unlocks it again").
TEST(SyncReviewTest, MutexInACancelledFrameIsNotTouchedAfterItGoes) {
  Afterlife<Mutex> storage;
  ::new (static_cast<void*>(storage.bytes)) Mutex();
  std::atomic<Mutex*> published{nullptr};
  {
    Runtime rt(two_cores());
    // The threads' frames go with their last handles: the holder's first, the waiter's next.
    JoinHandle<void> waiter, holder;
    holder = rt.spawn(0, [&](LwThread&) -> Task<void> {
      LivesIn<Mutex> mu(storage);
      MutexGuard g = co_await mu.a_.get().scoped_lock();
      published.store(&mu.a_.get());
      co_await sleep_for(absl::Hours(1));
    });
    waiter = rt.spawn(1, [&](LwThread&) -> Task<void> {
      while (published.load() == nullptr) co_await yield_now();
      co_await published.load()->lock();
      ADD_FAILURE() << "ran after stop(kCancel)";
    });
    while (published.load() == nullptr || published.load()->waiters() != 1) {
      std::this_thread::yield();
    }
    rt.stop(StopMode::kCancel);
  }
  // A give-back after the end would have found the fresh (unlocked) mutex and failed loudly.
  EXPECT_FALSE(storage.get().locked());
}

// The same for a Semaphore: the waiter's permits go back while the semaphore lives.
TEST(SyncReviewTest, SemaphoreInACancelledFrameIsNotTouchedAfterItGoes) {
  Afterlife<Semaphore> storage;
  ::new (static_cast<void*>(storage.bytes)) Semaphore();
  std::atomic<Semaphore*> published{nullptr};
  {
    Runtime rt(two_cores());
    JoinHandle<void> waiter, holder;
    holder = rt.spawn(0, [&](LwThread&) -> Task<void> {
      LivesIn<Semaphore> sem(storage, 0);
      published.store(&sem.a_.get());
      struct Releaser {
        Semaphore& s;
        ~Releaser() { s.release(2); }  // hands the waiter its permits as the frame goes
      } r{sem.a_.get()};
      co_await sleep_for(absl::Hours(1));
    });
    waiter = rt.spawn(1, [&](LwThread&) -> Task<void> {
      while (published.load() == nullptr) co_await yield_now();
      co_await published.load()->acquire(2);
      ADD_FAILURE() << "ran after stop(kCancel)";
    });
    while (published.load() == nullptr || published.load()->waiters() != 1) {
      std::this_thread::yield();
    }
    rt.stop(StopMode::kCancel);
  }
  EXPECT_EQ(storage.get().available(), 0) << "permits given back to a semaphore that was gone";
}

// The same for a Channel: a value sent as the frames go is not handed to a receiver whose core
// has finished (it would be lost with that frame): the receiver is refused, the value stays
// buffered, and is received once.
TEST(SyncReviewTest, ValueIsNotHandedToACancelledReceiver) {
  Channel<int> ch(1);
  {
    Runtime rt(two_cores());
    JoinHandle<void> receiver, sender;
    sender = rt.spawn(0, [&](LwThread&) -> Task<void> {
      struct SendsAsItGoes {
        Channel<int>& ch;
        ~SendsAsItGoes() { EXPECT_EQ(ch.try_send(7), 0); }
      } s{ch};
      co_await sleep_for(absl::Hours(1));
    });
    receiver = rt.spawn(1, [&](LwThread&) -> Task<void> {
      (void)co_await ch.recv();
      ADD_FAILURE() << "ran after stop(kCancel)";
    });
    while (ch.waiting_receivers() != 1) std::this_thread::yield();
    rt.stop(StopMode::kCancel);
  }
  EXPECT_EQ(ch.waiting_receivers(), 0u);
  EXPECT_EQ(ch.try_recv(), std::optional<int>(7));
}

// A channel, a semaphore and a mutex owned by a thread's frame, with other threads waiting on them
// when
// stop(kCancel) comes. The owner's frame may go first (frames go with their last handles, or in
// any order for detached threads): the waiters will never run again, and their requests must not
// make the primitive's destruction fail ("destroyed while requests wait" is for waiters that
// could still be woken into it).
TEST(SyncReviewTest, PrimitiveInACancelledFrameMayGoBeforeItsCancelledWaiters) {
  std::atomic<Channel<int>*> ch{nullptr};
  std::atomic<Semaphore*> sem{nullptr};
  std::atomic<Mutex*> mu{nullptr};
  Runtime rt(two_cores());
  JoinHandle<void> receiver, acquirer, locker, owner;
  owner = rt.spawn(0, [&](LwThread&) -> Task<void> {
    Mutex m;
    Channel<int> c(0);
    Semaphore s(0);
    co_await m.lock();  // and never unlocked: the owner is cancelled holding it
    ch.store(&c);
    sem.store(&s);
    mu.store(&m);
    co_await sleep_for(absl::Hours(1));
  });
  locker = rt.spawn(1, [&](LwThread&) -> Task<void> {
    while (mu.load() == nullptr) co_await yield_now();
    co_await mu.load()->lock();
    ADD_FAILURE() << "ran after stop(kCancel)";
  });
  receiver = rt.spawn(1, [&](LwThread&) -> Task<void> {
    while (ch.load() == nullptr) co_await yield_now();
    (void)co_await ch.load()->recv();
    ADD_FAILURE() << "ran after stop(kCancel)";
  });
  acquirer = rt.spawn(1, [&](LwThread&) -> Task<void> {
    while (sem.load() == nullptr) co_await yield_now();
    co_await sem.load()->acquire();
    ADD_FAILURE() << "ran after stop(kCancel)";
  });
  while (mu.load() == nullptr || ch.load()->waiting_receivers() != 1 ||
         sem.load()->waiters() != 1 || mu.load()->waiters() != 1) {
    std::this_thread::yield();
  }
  rt.stop(StopMode::kCancel);
  owner = {};  // the primitives go first
  receiver = {};
  acquirer = {};
  locker = {};
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

// A thread cancelled while it waits for a mutex, whose handle outlives the runtime: once the
// runtime is gone, its request must not still wait in the mutex's queue, or the next unlock
// grants it and wakes it on a core that no longer exists (a use after free). stop(kCancel)
// destroys the frames of the threads it cancels (the request leaves the queue with its frame).
TEST(SyncReviewTest, CancelledWaiterWhoseHandleOutlivesTheRuntimeLeavesTheQueue) {
  Mutex mu;
  Channel<int> ch(0);
  ASSERT_TRUE(mu.try_lock());
  JoinHandle<void> locker, receiver;
  {
    Runtime rt(two_cores());
    locker = rt.spawn(1, [&](LwThread&) -> Task<void> {
      co_await mu.lock();
      ADD_FAILURE() << "granted after stop(kCancel)";
    });
    receiver = rt.spawn(0, [&](LwThread&) -> Task<void> {
      (void)co_await ch.recv();
      ADD_FAILURE() << "received after stop(kCancel)";
    });
    while (mu.waiters() != 1 || ch.waiting_receivers() != 1) std::this_thread::yield();
    rt.stop(StopMode::kCancel);
  }
  EXPECT_EQ(mu.waiters(), 0u);
  EXPECT_EQ(ch.waiting_receivers(), 0u);
  mu.unlock();  // with the request still queued: granted to a thread on a core that is gone
  EXPECT_EQ(ch.try_send(1), -EAGAIN) << "a value handed to a receiver that is gone";
  EXPECT_THROW(locker.join(), ThreadCancelled);
  EXPECT_THROW(receiver.join(), ThreadCancelled);
}

// stop(kCancel) destroys the frames of the threads it cancels: one parked joining another (a
// wait on that thread's exit message) must be gone only after the exit it waits on has been
// replied, or that reply wakes a waiter in a freed frame (ASan: heap-use-after-free).
TEST(SyncReviewTest, CancelledThreadJoiningAnotherGoesAfterTheOthersExitIsReplied) {
  for (int round = 0; round < 4; ++round) {
    Runtime rt(two_cores());
    Mutex mu;
    ASSERT_TRUE(mu.try_lock());
    JoinHandle<void> waiter;
    std::atomic<bool> spawned{false}, joining{false};
    // The joiner first: stop destroys threads in the order they were spawned.
    auto joiner = rt.spawn(round % 2, [&](LwThread&) -> Task<void> {
      while (!spawned.load()) co_await yield_now();
      joining.store(true);
      co_await waiter;
    });
    waiter = rt.spawn(1 - round % 2, [&](LwThread&) -> Task<void> {
      co_await mu.lock();  // never granted
    });
    spawned.store(true);
    while (!joining.load() || mu.waiters() != 1) std::this_thread::yield();
    if (round >= 2) joiner.detach();  // its frame then goes with the runtime's last reference
    rt.stop(StopMode::kCancel);
    mu.unlock();
  }
}

// chrono.h: every call that takes a time point takes a std::chrono one too (system_clock or
// steady_clock), with the same behaviour as the absl form.
TEST(SyncReviewTest, DeadlinesTakeStdChronoTimePoints) {
  using namespace std::chrono_literals;
  Runtime rt(two_cores());
  Mutex mu;
  Semaphore sem(1);
  rt.block_on([](Mutex& mu, Semaphore& sem) -> Task<void> {
    EXPECT_TRUE(co_await mu.lock_until(std::chrono::steady_clock::now() + 1s));
    EXPECT_FALSE(co_await mu.lock_until(std::chrono::steady_clock::now() + 1ms));
    EXPECT_FALSE(co_await mu.lock_until(std::chrono::system_clock::now() - 1s));
    mu.unlock();
    EXPECT_TRUE(co_await sem.acquire_until(1, std::chrono::system_clock::now() + 1s));
    EXPECT_FALSE(co_await sem.acquire_until(1, std::chrono::steady_clock::now() + 1ms));
    sem.release();
  }(mu, sem));
  EXPECT_FALSE(mu.locked());
  EXPECT_EQ(sem.available(), 1);
  rt.stop();
}

// chrono.h: to_absl saturates past absl's range, never overflows; also for an unsigned count.
TEST(SyncReviewTest, UnsignedChronoDurationsSaturate) {
  using Ms = std::chrono::duration<std::uint64_t, std::milli>;
  EXPECT_EQ(to_absl(Ms(UINT64_MAX)), absl::InfiniteDuration());
  EXPECT_EQ(to_absl(Ms(5)), absl::Milliseconds(5));
  using Ns = std::chrono::duration<unsigned long long, std::nano>;
  EXPECT_EQ(to_absl(Ns(~0ull)), absl::InfiniteDuration());
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
