// msgport/runtime/timer.h — sleeping, and deadlines on messages, on a core's loop.
//
//   co_await sleep_for(absl::Milliseconds(5));
//   co_await sleep_until(deadline);
//   int r = co_await do_msg_until(port, m, absl::Now() + absl::Milliseconds(10));
//
// Each also takes std::chrono (runtime/chrono.h): a duration, or a time point of
// std::chrono::system_clock or std::chrono::steady_clock (taken relative to now when the call is
// made). The chrono overload converts and calls the absl one: the same behaviour.
//
//   co_await sleep_for(std::chrono::milliseconds(5));
//   int r = co_await do_msg_until(port, m, std::chrono::steady_clock::now() + 10ms);
//
// Timers fire on the core the coroutine runs on, in deadline order (ties: in the order armed),
// never before their deadline. A sleep whose deadline has passed does not suspend.
//
// do_msg_until is do_msg with a deadline: if the reply has not come by then, the message is
// aborted (abort_msg, from the sender's own core) — and, as always, still replied exactly once.
// The result is then -ETIMEDOUT if its holder cancelled it (m.result() says the same), or its
// own result if the holder finished first (a holder that has already taken the message may
// ignore the abort and reply when it is done). A cancel that is not the deadline's stays
// -ECANCELED: abort_msg from the sender's core before the deadline, or a port that refused or
// cancelled the message before the deadline passed. The message must be kMsgAbortable for the
// holder to cancel it (do_msg_until sets that).
//
// All of these must be awaited on a core (a lightweight thread); elsewhere they throw
// std::logic_error, even a sleep whose deadline has already passed.
#pragma once

#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/task.h>
#include <msgport/runtime/chrono.h>
#include <msgport/runtime/core.h>

#include <cerrno>
#include <chrono>
#include <coroutine>
#include <stdexcept>
#include <string>

namespace msgport {

// Cancellation (in a Task under one: JoinHandle::cancel()): once it is requested a sleep returns
// at once; a sleep under way when the cancel arrives ends then (its timer disarmed).
class [[nodiscard]] SleepUntil {
 public:
  explicit SleepUntil(absl::Time when) noexcept { timer_.when = when; }
  SleepUntil(const SleepUntil&) = delete;
  SleepUntil& operator=(const SleepUntil&) = delete;
  ~SleepUntil() { cw_.leave(); }  // destroyed asleep (a thread destroyed by stop)

  // Checks the core first, so that a sleep with nothing left to wait also throws off a core.
  bool await_ready() {
    timer_.core = &detail::current_core_or_throw("sleep");
    return timer_.when <= absl::Now();
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) {
    Cancellation* c = cancellation_of(h);
    if (c != nullptr && c->requested()) return false;
    Core& core = *timer_.core;
    timer_.sleeper = h;
    timer_.fire = [](CoreTimer* t) noexcept {
      auto* self = static_cast<Timer*>(t);
      self->core->resume_here(self->sleeper);
    };
    core.arm(timer_);
    if (c != nullptr) cw_.enter(*c, &on_cancel, this);
    return true;
  }
  void await_resume() noexcept { cw_.leave(); }

 private:
  // On the sleeper's core, while it sleeps. A timer that has fired has resumed the sleeper, or
  // queued it to resume (a core holding back): then there is nothing to end.
  static void on_cancel(void* arg) noexcept {
    auto* self = static_cast<SleepUntil*>(arg);
    if (self->timer_.heap_index == static_cast<std::size_t>(-1)) return;
    self->timer_.core->disarm(self->timer_);
    self->timer_.core->schedule(self->timer_.sleeper);
  }
  struct Timer : CoreTimer {
    std::coroutine_handle<> sleeper;
    Core* core = nullptr;
  };
  Timer timer_;
  CancelWait cw_;
};

inline SleepUntil sleep_until(absl::Time when) noexcept { return SleepUntil(when); }
inline SleepUntil sleep_for(absl::Duration d) noexcept { return SleepUntil(absl::Now() + d); }

template <ChronoTimePoint T>
SleepUntil sleep_until(T when) noexcept {
  return sleep_until(to_absl(when));
}
template <class Rep, class Period>
SleepUntil sleep_for(std::chrono::duration<Rep, Period> d) noexcept {
  return sleep_for(to_absl(d));
}

// do_msg with a deadline.
template <PortType P>
Task<int> do_msg_until(P& port, Message& m, absl::Time deadline) {
  Core& core = detail::current_core_or_throw("do_msg_until");
  m.set_abortable(true);
  struct Deadline : CoreTimer {
    Message* msg;
    bool expired = false;  // the deadline aborted the message (on this core only)
  } timer;
  timer.when = deadline;
  timer.msg = &m;
  timer.fire = [](CoreTimer* t) noexcept {
    auto* self = static_cast<Deadline*>(t);
    // Only an abort of our own: not when the reply came first, nor when the sender's context
    // already aborted it (that cancel stays -ECANCELED). abort_msg is called on this core only,
    // so the flag cannot change under us.
    if (self->msg->done() || self->msg->abort_requested()) return;
    self->expired = true;
    abort_msg(*self->msg);
  };
  DoMsg pending = do_msg(port, m);
  if (!m.done()) core.arm(timer);
  int r = co_await pending;
  core.disarm(timer);  // a no-op if it fired
  if (timer.expired && r == -ECANCELED) {
    r = -ETIMEDOUT;
    detail::MsgAccess::result(m) = r;  // the message is the sender's again: it says the same
  }
  co_return r;
}

// do_msg with a std::chrono deadline (system_clock or steady_clock).
template <PortType P, ChronoTimePoint T>
Task<int> do_msg_until(P& port, Message& m, T deadline) {
  return do_msg_until(port, m, to_absl(deadline));
}

}  // namespace msgport
