// runtime/timer.h — sleeping, and deadlines on messages, on a core's loop.
//
//   co_await sleep_for(absl::Milliseconds(5));
//   co_await sleep_until(deadline);
//   int r = co_await do_msg_until(port, m, absl::Now() + absl::Milliseconds(10));
//
// Timers fire on the core the coroutine runs on, in deadline order (ties: in the order armed),
// never before their deadline. A sleep whose deadline has passed does not suspend.
//
// do_msg_until is do_msg with a deadline: if the reply has not come by then, the message is
// aborted (abort_msg, from the sender's own core) — and, as always, still replied exactly once:
// -ECANCELED if its holder cancelled it, its own result if it finished first. The message must be
// kMsgAbortable for the holder to cancel it (do_msg_until sets that).
//
// All of these must be awaited on a core (a lightweight thread); elsewhere they throw
// std::logic_error.
#pragma once

#include <coroutine>
#include <stdexcept>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ports/ops.h"
#include "ports/task.h"
#include "runtime/core.h"

namespace msgport {

class [[nodiscard]] SleepUntil {
 public:
  explicit SleepUntil(absl::Time when) noexcept { timer_.when = when; }

  bool await_ready() const noexcept { return timer_.when <= absl::Now(); }
  void await_suspend(std::coroutine_handle<> h) {
    Core& core = detail::current_core_or_throw("sleep");
    timer_.sleeper = h;
    timer_.core = &core;
    timer_.fire = [](CoreTimer* t) noexcept {
      auto* self = static_cast<Timer*>(t);
      self->core->resume_here(self->sleeper);
    };
    core.arm(timer_);
  }
  void await_resume() const noexcept {}

 private:
  struct Timer : CoreTimer {
    std::coroutine_handle<> sleeper;
    Core* core = nullptr;
  };
  Timer timer_;
};

inline SleepUntil sleep_until(absl::Time when) noexcept { return SleepUntil(when); }
inline SleepUntil sleep_for(absl::Duration d) noexcept { return SleepUntil(absl::Now() + d); }

// do_msg with a deadline.
template <PortType P>
Task<int> do_msg_until(P& port, Message& m, absl::Time deadline) {
  Core& core = detail::current_core_or_throw("do_msg_until");
  m.set_abortable(true);
  struct Deadline : CoreTimer {
    Message* msg;
  } timer;
  timer.when = deadline;
  timer.msg = &m;
  timer.fire = [](CoreTimer* t) noexcept { abort_msg(*static_cast<Deadline*>(t)->msg); };
  DoMsg pending = do_msg(port, m);
  if (!m.done()) core.arm(timer);
  int r = co_await pending;
  core.disarm(timer);  // a no-op if it fired
  co_return r;
}

}  // namespace msgport
