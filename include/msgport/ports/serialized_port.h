// msgport/ports/serialized_port.h — a port any thread may serve inline when it gets the lock at
// once.
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
//
// An F that throws has not taken the message (it must not reply, forward or keep it first). The
// serializer is released either way.
//   Inline: the exception propagates to the sender (do_msg, send_msg, do_msg_blocking rethrow
//     it) and the message is the sender's again, never replied: it may be sent again.
//   In serve(): there is no sender to throw to. The message is replied -ECANCELED (it was not
//     carried out), the failure is counted (failures()) and reported on stderr with the
//     exception's what(), and serve() goes on with the next message.
//
// Counters (counters(), ports/port_counters.h, from any thread): `sync` counts messages F ran
// inline in the sender's context (counted under the serializer); async / queued those that went
// to the queue for serve(); refused, aborted, cancelled as on any QueuePort; replies those that
// came back here (only completed). failures() counts what F threw for in serve().
//
// Someone must serve: a message that finds the serializer busy (or others waiting) stays queued
// until serve() runs — it is served as soon as it does, in order — or until the port is
// destroyed, which replies every queued message -ECANCELED (nothing is lost, but a sender waits
// until then). So start serve() before senders can contend, or close() and destroy the port
// when nobody will serve it; pending() tells how many wait.
#pragma once

#include <msgport/ports/ops.h>
#include <msgport/ports/queue_port.h>
#include <msgport/ports/spin_lock.h>
#include <msgport/ports/task.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <type_traits>
#include <utility>

namespace msgport {

template <class F>
requires std::is_invocable_r_v<int, F&, Message&>
class SerializedPort final : public QueuePort {
 public:
  explicit SerializedPort(F work) : work_(std::move(work)) {}

  int begin_msg(Message& m) override {
    if (closed()) {
      count(&detail::PortCounts::refused);
      return -ECANCELED;
    }
    if (pending_.load(std::memory_order_acquire) == 0 && serializer_.try_lock()) {
      Held held(serializer_);  // released also when F throws
      if (pending_.load(std::memory_order_acquire) == 0) {
        int r = work_(m);
        counts().sync.bump();  // single writer: the serializer's holder
        return r;
      }
    }
    pending_.fetch_add(1, std::memory_order_acq_rel);
    int r = QueuePort::begin_msg(m);
    if (r != kAsync) pending_.fetch_sub(1, std::memory_order_acq_rel);  // refused
    return r;
  }

  // Not a reply queue: serve() takes requests only. A reply coming back here only completes the
  // message (and wakes a wait_msg on it), as a null reply port would.
  void put_reply(Message& m) noexcept override {
    count(&detail::PortCounts::replies);
    detail::complete(m);
  }

  bool remove_queued(Message& m, bool reply) noexcept override {
    bool removed = QueuePort::remove_queued(m, reply);
    if (removed && !reply) pending_.fetch_sub(1, std::memory_order_acq_rel);
    return removed;
  }

  // The owner's loop: serve queued messages until the port is closed and drained. A message F
  // throws for is replied -ECANCELED, counted and reported (see the top of this file).
  Task<void> serve() {
    while (Message* m = co_await wait_port(*this)) {
      int r;
      try {
        serializer_.lock();
        Served served(*this);  // then pending_ counts m no more, and the serializer is free
        r = work_(*m);
      } catch (...) {
        failed(std::current_exception());
        r = -ECANCELED;
      }
      if (r != kAsync) reply_msg(*m, r);
    }
  }

  // Messages queued or being served by the owner.
  std::size_t pending() const noexcept { return pending_.load(std::memory_order_acquire); }

  // Queued messages F threw for in serve() (each replied -ECANCELED).
  std::uint64_t failures() const noexcept { return failures_.load(std::memory_order_relaxed); }

 private:
  struct Held {
    SpinLock& lock;
    explicit Held(SpinLock& l) noexcept : lock(l) {}
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    ~Held() { lock.unlock(); }
  };
  // serve() holds the serializer for one message: at the end, m leaves pending_ before the
  // serializer is let go, so the next sender to get it may run inline.
  struct Served {
    SerializedPort& port;
    explicit Served(SerializedPort& p) noexcept : port(p) {}
    Served(const Served&) = delete;
    Served& operator=(const Served&) = delete;
    ~Served() {
      port.pending_.fetch_sub(1, std::memory_order_acq_rel);
      port.serializer_.unlock();
    }
  };

  void failed(std::exception_ptr e) noexcept {
    // One writer (the owner): no read-modify-write needed.
    std::uint64_t n = failures_.load(std::memory_order_relaxed);
    failures_.store(n + 1, std::memory_order_relaxed);  // single writer: the owner
    const char* what = "not a std::exception";
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
    }
    std::fprintf(stderr,
                 "msgport: SerializedPort: the agent threw while serving a queued message (%s); "
                 "it was replied -ECANCELED\n",
                 what);
  }

  F work_;
  SpinLock serializer_;
  std::atomic<std::size_t> pending_{0};
  std::atomic<std::uint64_t> failures_{0};
};

}  // namespace msgport
