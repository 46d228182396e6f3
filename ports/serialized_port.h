// ports/serialized_port.h — a port any thread may serve inline when it gets the lock at once.
//
// SerializedPort<F>: F is the agent's work, called with the port's serializer held, so F's state
// needs no other lock. A sender that takes the serializer at once (the seeds' try_mplock()) runs
// F inline, in its own context, and gets the result with no queueing and no suspension. If the
// serializer is busy — or messages are already waiting, so that order is kept — the message is
// queued for the port's owner, a coroutine running serve(), which takes the serializer (spinning
// briefly: holders only run F, which must not block) and runs F for each queued message.
//
// F returns a result, or kAsync if it took the message (forwarded it, or will reply later).
// After close() every new message is refused with -ECANCELED, inline or not. Replies addressed
// to a serialized port are not queued (serve() takes requests only): they only complete.
//
// Order: a message is run inline only when no earlier message is queued or being served
// (pending() == 0 while the serializer is held), so messages from one sender begin in the order
// sent. Priority messages jump the queue, as on any QueuePort.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <mutex>
#include <utility>

#include "ports/ops.h"
#include "ports/queue_port.h"
#include "ports/spin_lock.h"
#include "ports/task.h"

namespace msgport {

template <class F>
requires std::is_invocable_r_v<int, F&, Message&>
class SerializedPort final : public QueuePort {
 public:
  explicit SerializedPort(F work) : work_(std::move(work)) {}

  int begin_msg(Message& m) override {
    if (closed()) return -ECANCELED;
    if (pending_.load(std::memory_order_acquire) == 0 && serializer_.try_lock()) {
      if (pending_.load(std::memory_order_acquire) == 0) {
        int r = work_(m);
        serializer_.unlock();
        return r;
      }
      serializer_.unlock();
    }
    pending_.fetch_add(1, std::memory_order_acq_rel);
    int r = QueuePort::begin_msg(m);
    if (r != kAsync) pending_.fetch_sub(1, std::memory_order_acq_rel);  // refused
    return r;
  }

  // Not a reply queue: serve() takes requests only. A reply coming back here only completes the
  // message (and wakes a wait_msg on it), as a null reply port would.
  void put_reply(Message& m) noexcept override { detail::complete(m); }

  bool remove_queued(Message& m, bool reply) noexcept override {
    bool removed = QueuePort::remove_queued(m, reply);
    if (removed && !reply) pending_.fetch_sub(1, std::memory_order_acq_rel);
    return removed;
  }

  // The owner's loop: serve queued messages until the port is closed and drained.
  Task<void> serve() {
    while (Message* m = co_await wait_port(*this)) {
      int r;
      {
        std::lock_guard lock(serializer_);
        r = work_(*m);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
      if (r != kAsync) reply_msg(*m, r);
    }
  }

  // Messages queued or being served by the owner.
  std::size_t pending() const noexcept { return pending_.load(std::memory_order_acquire); }

 private:
  F work_;
  SpinLock serializer_;
  std::atomic<std::size_t> pending_{0};
};

}  // namespace msgport
