// msgport/runtime/semaphore.h — a counting semaphore for lightweight threads, built as a port.
//
//   Semaphore sem(4);                       // 4 permits
//   co_await sem.acquire();  ...  sem.release();
//   co_await sem.acquire(3); ...  sem.release(3);
//   if (co_await sem.acquire_until(2, deadline)) { ...; sem.release(2); }
//   if (sem.try_acquire()) { ...; sem.release(); }
//
// An acquire is a message (Semaphore::AcquireMsg, which carries how many permits it asks for)
// sent to the semaphore, a port. The agent grants it inline when the permits are there and
// nobody waits before it: co_await acquire() then completes with no suspension and no
// allocation. Otherwise the request waits in the queue, strictly FIFO (a kMsgPriority request
// goes ahead): a large request at the head holds back smaller ones behind it, so none starves.
// release(n) adds n permits and grants, in order, every request at the head that they now
// cover, each replied 0 and resumed on its own core (directly inside release() when the releaser
// runs there, else through that core's inbox).
//
// Aborts and deadlines (abort_msg from the sender's core, acquire_until, do_msg_until(sem, m, t)
// with an AcquireMsg) follow the message rules: a request still queued is taken out and replied
// -ECANCELED (-ETIMEDOUT for a deadline), never granted later, and the permits stay with the
// semaphore (a request taken out from the head lets the ones behind it through at once); a
// request already granted keeps its permits (result 0: the caller must release them). Exactly one
// reply per request.
//
// Any thread or core may release, also permits it did not acquire (there is no owner). A count
// that would become negative, or n < 0, fails loudly in every build. Only AcquireMsg (or a class
// derived from it) may be sent to a Semaphore. A lightweight thread destroyed while it waits takes
// its request back out of the queue; one whose core stop has sealed is never granted (replied
// -ECANCELED, its place going to the ones behind it); one granted before its core stopped but
// never resumed gives its permits back when its frame is destroyed. Destroying a Semaphore while
// requests wait fails loudly in every build, unless every waiter's core has been sealed by stop
// (stop(kCancel) destroying the semaphore's frame before theirs): those are replied -ECANCELED.
//
// Thread-safety: every member may be called from any thread or core; the waits are for
// coroutines (acquire_until on a core only), acquire_blocking() for plain threads (on a core it
// throws std::logic_error). The count and the queue are guarded by one short spin lock. Nothing
// allocates.
#pragma once

#include <absl/time/time.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/spin_lock.h>
#include <msgport/runtime/chrono.h>
#include <msgport/runtime/sync_request.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace msgport {

class Semaphore final : public Port {
 public:
  // A request for n permits.
  struct AcquireMsg : Message {
    explicit AcquireMsg(std::int64_t permits = 1) noexcept : n(permits) {}
    std::int64_t n;
  };

  explicit Semaphore(std::int64_t permits = 0);
  ~Semaphore() override;

  int begin_msg(Message& m) override;
  void abort(Message& m) noexcept override;
  bool remove_queued(Message& m, bool reply) noexcept override;

  // co_await sem.acquire(n): returns once n permits are the caller's.
  class [[nodiscard]] AcquireAwaiter : public detail::SyncRequest<Semaphore, AcquireMsg> {
   public:
    using SyncRequest::SyncRequest;
    void await_resume() noexcept { finish(); }
  };
  AcquireAwaiter acquire(std::int64_t n = 1) noexcept { return AcquireAwaiter(*this, n); }

  // co_await sem.acquire_until(n, deadline): true once acquired; false if the deadline passed
  // first (the request left the queue; no permit was taken).
  class [[nodiscard]] AcquireUntilAwaiter
      : public detail::SyncRequest<Semaphore, AcquireMsg, true> {
   public:
    AcquireUntilAwaiter(Semaphore& s, std::int64_t n, absl::Time deadline) : SyncRequest(s, n) {
      set_deadline(deadline);
    }
    bool await_resume() noexcept { return finish() == 0; }
  };
  AcquireUntilAwaiter acquire_until(std::int64_t n, absl::Time deadline) {
    return AcquireUntilAwaiter(*this, n, deadline);
  }
  // The same with a std::chrono system_clock or steady_clock deadline (runtime/chrono.h).
  template <ChronoTimePoint T>
  AcquireUntilAwaiter acquire_until(std::int64_t n, T deadline) {
    return acquire_until(n, to_absl(deadline));
  }

  // Takes n permits if they are there and nobody waits; never waits.
  bool try_acquire(std::int64_t n = 1) noexcept;

  // Returns n permits and grants the waiters they now cover, in order.
  void release(std::int64_t n = 1) noexcept;

  // For plain threads: blocks (without spinning) until n permits are the caller's. On a core it
  // throws std::logic_error (it would block the core).
  void acquire_blocking(std::int64_t n = 1);

  // Snapshots, for tests and diagnostics.
  std::int64_t available() const noexcept { return count_.load(std::memory_order_acquire); }
  std::size_t waiters() const noexcept;

 private:
  template <class, class, bool>
  friend class detail::SyncRequest;
  void unclaimed_grant(Message& m) noexcept { release(static_cast<AcquireMsg&>(m).n); }

  // Under guard_: takes the head requests the permits cover off the queue, onto `granted`, and
  // those whose core has finished onto `gone` (refused: detail::can_take_grant).
  void grant_locked(MsgQueue& granted, MsgQueue& gone) noexcept;
  // After guard_: replies `gone` -ECANCELED, then `granted` 0.
  static void reply_all(MsgQueue& granted, MsgQueue& gone) noexcept;

  mutable SpinLock guard_;
  // Written under guard_ only (load + store); read without it by available().
  std::atomic<std::int64_t> count_;
  MsgQueue waiters_;
};

}  // namespace msgport
