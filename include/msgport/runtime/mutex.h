// msgport/runtime/mutex.h — a mutex for lightweight threads, built as a port.
//
//   Mutex mu;
//   co_await mu.lock();  ...  mu.unlock();
//   { MutexGuard g = co_await mu.scoped_lock(); ... }           // unlocks when g goes
//   if (co_await mu.lock_until(absl::Now() + absl::Milliseconds(5))) { ...; mu.unlock(); }
//   if (mu.try_lock()) { ...; mu.unlock(); }
//
// A lock request is a message sent to the mutex, which is a port: lock() is do_msg(mu, m) with
// m in the awaiter (in the coroutine's frame). The agent grants a free mutex inline — the seeds'
// try_mplock(): one compare-exchange, and co_await lock() completes with no suspension, no
// queue, no allocation. A locked mutex queues the request (FIFO; a kMsgPriority request goes
// ahead of the others), and the coroutine parks on it. unlock() hands the mutex to the first
// waiter — the mutex is never free while requests wait, so nobody barges in, try_lock() included
// — and replies its request 0. That resumes the waiter on its own core: at once, inside
// unlock(), when the unlocker runs on that core (direct resumption, within the core's budget);
// through that core's inbox when it runs elsewhere.
//
// The mutex has no owner: unlock() may be called from any lightweight thread on any core, or
// from a plain thread, by whoever holds the lock at the time (a holder may hand the duty on,
// migrate, or send it with a message). unlock() of a mutex that is not locked fails loudly in
// every build: "msgport: broken rule: Mutex::unlock: ...", then abort.
//
// As messages, lock requests follow the message rules. co_await do_msg(mu, m) and
// send_msg(mu, m) send a request of your own (any Message; result 0 = locked). A request may be
// aborted while it waits — abort_msg(m) from the sender's core, or a deadline: lock_until(t), or
// do_msg_until(mu, m, t) — and is then replied exactly once, -ECANCELED (-ETIMEDOUT for a
// deadline), and never granted afterwards; an abort that comes after the grant finds the request
// already granted, and its result is 0 (the caller holds the lock and must unlock it). No grant
// is lost and none is made twice: the mutex's queue lock decides which came first.
//
// A lightweight thread destroyed while it waits (stop(kCancel)) takes its request back out of
// the queue. Once stop has sealed a waiter's core, unlock() no longer grants it (a holder's guard
// unlocked as its frame was destroyed, say): its request is replied -ECANCELED and the mutex goes
// to the next waiter, so nothing stays locked by a thread that is gone, and the mutex may go with
// the holder's frame. One granted before its core stopped but never resumed unlocks it again when
// its frame is destroyed (the mutex must still be there then).
// Destroying a Mutex while requests wait for it fails loudly in every build (they would be woken
// into a mutex that is gone), unless every waiter's core has been sealed by stop (stop(kCancel)
// destroying the mutex's frame before theirs): those are replied -ECANCELED. Destroying it
// locked is the caller's bug, as with std::mutex.
//
// Thread-safety: every member may be called from any thread or core. Waiting for the mutex
// (lock, scoped_lock, lock_until) is for coroutines; lock_until on a core only (its timer runs
// there). lock_blocking() is for plain threads (on a core it would block the core: it throws
// std::logic_error there).
//
// Allocation: none. Uncontended lock + unlock is two atomic read-modify-writes, as std::mutex.
#pragma once

#include <absl/time/time.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/spin_lock.h>
#include <msgport/runtime/chrono.h>
#include <msgport/runtime/sync_request.h>

#include <atomic>
#include <cstdint>
#include <utility>

namespace msgport {

class Mutex;

// Holds a Mutex locked; unlocks it when destroyed (or at unlock()). Move-only.
class [[nodiscard]] MutexGuard {
 public:
  MutexGuard() = default;
  explicit MutexGuard(Mutex& mu) noexcept : mu_(&mu) {}
  MutexGuard(MutexGuard&& o) noexcept : mu_(std::exchange(o.mu_, nullptr)) {}
  MutexGuard& operator=(MutexGuard&& o) noexcept {
    if (this != &o) {
      reset();
      mu_ = std::exchange(o.mu_, nullptr);
    }
    return *this;
  }
  ~MutexGuard() { reset(); }

  bool owns_lock() const noexcept { return mu_ != nullptr; }
  explicit operator bool() const noexcept { return owns_lock(); }
  void unlock() noexcept { reset(); }

 private:
  inline void reset() noexcept;
  Mutex* mu_ = nullptr;
};

class Mutex final : public Port {
 public:
  Mutex() = default;
  ~Mutex() override;

  // The agent: grants a free mutex at once (0), else queues the request (kAsync).
  int begin_msg(Message& m) override {
    std::uint32_t expected = kFree;
    if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return 0;
    }
    return lock_slow(m);
  }
  void abort(Message& m) noexcept override;
  bool remove_queued(Message& m, bool reply) noexcept override;

  // co_await mu.lock(): returns once the mutex is locked for the caller.
  class [[nodiscard]] LockAwaiter : public detail::SyncRequest<Mutex, Message> {
   public:
    using SyncRequest::SyncRequest;
    void await_resume() noexcept { finish(); }
  };
  LockAwaiter lock() noexcept { return LockAwaiter(*this); }

  // co_await mu.scoped_lock(): the same, as a guard that unlocks when it goes.
  class [[nodiscard]] ScopedAwaiter : public detail::SyncRequest<Mutex, Message> {
   public:
    using SyncRequest::SyncRequest;
    MutexGuard await_resume() noexcept {
      finish();
      return MutexGuard(port());
    }
  };
  ScopedAwaiter scoped_lock() noexcept { return ScopedAwaiter(*this); }

  // co_await mu.lock_until(deadline): true once locked; false when the deadline passed first
  // (the request was taken out of the queue, and will never be granted).
  class [[nodiscard]] LockUntilAwaiter : public detail::SyncRequest<Mutex, Message, true> {
   public:
    LockUntilAwaiter(Mutex& mu, absl::Time deadline) : SyncRequest(mu) { set_deadline(deadline); }
    bool await_resume() noexcept { return finish() == 0; }
  };
  LockUntilAwaiter lock_until(absl::Time deadline) { return LockUntilAwaiter(*this, deadline); }
  // The same with a std::chrono system_clock or steady_clock deadline (runtime/chrono.h).
  template <ChronoTimePoint T>
  LockUntilAwaiter lock_until(T deadline) {
    return lock_until(to_absl(deadline));
  }

  // Locks if free, never waits. Fails while the mutex is locked or has waiters.
  bool try_lock() noexcept {
    std::uint32_t expected = kFree;
    return state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  // Unlocks, handing the mutex to the first waiter if there is one (see the top of this file).
  void unlock() noexcept {
    std::uint32_t expected = kLocked;
    if (state_.compare_exchange_strong(expected, kFree, std::memory_order_release,
                                       std::memory_order_relaxed)) {
      return;
    }
    unlock_slow();
  }

  // For plain threads: blocks (without spinning) until locked. On a core it throws
  // std::logic_error (it would block the core).
  void lock_blocking();

  // A snapshot, for tests and diagnostics.
  bool locked() const noexcept { return state_.load(std::memory_order_acquire) != kFree; }
  std::size_t waiters() const noexcept;

 private:
  template <class, class, bool>
  friend class detail::SyncRequest;
  void unclaimed_grant(Message&) noexcept { unlock(); }

  // kContended: locked, and requests may wait (unlock takes the slow path and looks).
  enum : std::uint32_t { kFree = 0, kLocked = 1, kContended = 2 };
  int lock_slow(Message& m) noexcept;
  void unlock_slow() noexcept;

  std::atomic<std::uint32_t> state_{kFree};
  mutable SpinLock guard_;  // guards waiters_ (and the kContended -> kLocked/kFree changes)
  MsgQueue waiters_;
};

inline void MutexGuard::reset() noexcept {
  if (mu_ != nullptr) std::exchange(mu_, nullptr)->unlock();
}

}  // namespace msgport
