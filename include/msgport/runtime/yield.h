// msgport/runtime/yield.h — co_await yield_now(): let the other ready coroutines of this core run
// first.
//
// The coroutine goes to the back of its core's run queue and continues when the core gets to it
// (after the backlog of a full ring is gone, like every run-queue resumption: runtime/core.h).
// A long computation on a core yields now and then so the core's other threads and its inboxes
// are served. On a thread that is not a core it throws std::logic_error.
#pragma once

#include <msgport/runtime/core.h>

#include <coroutine>

namespace msgport {

class [[nodiscard]] YieldNow {
 public:
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const {
    detail::current_core_or_throw("yield_now").schedule(h);
  }
  void await_resume() const noexcept {}
};

inline YieldNow yield_now() noexcept { return {}; }

}  // namespace msgport
