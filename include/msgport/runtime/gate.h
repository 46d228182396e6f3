// msgport/runtime/gate.h — a gate: wait for every task that entered to leave, then stay shut.
//
// A server holds each connection's task through its gate; to stop, it closes the gate and waits
// until every connection has finished:
//
//   Gate gate;
//   rt.spawn(core, gate.hold(serve_connection(fd)));   // entered now, left when the task ends
//   ...
//   co_await gate.close();                             // no new entries; all have left
//
// hold(t) enters at once (so that close() cannot finish before t has run) and leaves when t ends;
// a held task that is destroyed without ever running (the spawn that was to run it threw, say)
// leaves when it is destroyed, so it never keeps close() waiting.
//
// enter()/leave() may be called from any core or thread (the count is atomic). After close(),
// hold() and enter() throw std::logic_error("... gate is closed"). close() completes exactly once,
// when the last holder leaves — or at once if none is inside; it may be awaited from a coroutine
// (co_await gate.close()) or waited for from a plain thread (gate.close_blocking()).
#pragma once

#include <msgport/ports/ops.h>
#include <msgport/ports/task.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <utility>

namespace msgport {

class Gate {
 public:
  Gate() { detail::MsgAccess::state(closed_).store(kMsgInFlight, std::memory_order_relaxed); }
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  void enter() {
    std::int64_t n = count_.load(std::memory_order_relaxed);
    do {
      if (n & kClosing) throw std::logic_error("msgport: the gate is closed");
    } while (!count_.compare_exchange_weak(n, n + 1, std::memory_order_acq_rel));
  }

  void leave() noexcept {
    if (count_.fetch_sub(1, std::memory_order_acq_rel) == (kClosing | 1)) finish();
  }

  // Enters now; the returned task leaves when t ends (also if it throws), or, if it never runs,
  // when it is destroyed (say the spawn that was to run it threw).
  template <class T>
  Task<T> hold(Task<T> t) {
    enter();
    return held(std::move(t), Entry(this));
  }

  // Shuts the gate and waits for everyone inside to leave.
  WaitMsg close() {
    shut();
    return wait_msg(closed_);
  }
  void close_blocking() {
    shut();
    wait_msg_blocking(closed_);
  }

  std::int64_t inside() const noexcept {
    return count_.load(std::memory_order_acquire) & ~kClosing;
  }

 private:
  static constexpr std::int64_t kClosing = std::int64_t{1} << 62;

  void shut() {
    std::int64_t before = count_.fetch_or(kClosing, std::memory_order_acq_rel);
    if (before & kClosing) throw std::logic_error("msgport: the gate is closed twice");
    if (before == 0) finish();
  }
  void finish() noexcept { reply_msg(closed_, 0); }

  // One entry into the gate, left when the Entry that holds it goes away.
  class Entry {
   public:
    explicit Entry(Gate* g) noexcept : g_(g) {}
    Entry(Entry&& other) noexcept : g_(std::exchange(other.g_, nullptr)) {}
    Entry& operator=(Entry&&) = delete;
    ~Entry() {
      if (g_ != nullptr) g_->leave();
    }

   private:
    Gate* g_;
  };

  // The entry is a parameter, so the frame owns it from the start: a task destroyed before it
  // ever ran leaves with its frame. Once it runs, the body takes the entry over and leaves when
  // it ends (not later, when the frame is destroyed).
  template <class T>
  Task<T> held(Task<T> t, Entry entry) {
    Entry inside = std::move(entry);
    co_return co_await std::move(t);
  }

  std::atomic<std::int64_t> count_{0};
  Message closed_;  // in flight until the gate is shut and empty: close() is wait_msg on it
};

}  // namespace msgport
