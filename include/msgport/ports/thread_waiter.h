// msgport/ports/thread_waiter.h — a plain thread (main, a test, a foreign thread) parked on a
// message or a port, blocked without spinning a core.
//
// The waker sets the flag and notifies while holding the mutex, so the parked thread cannot
// return (and destroy the waiter, which lives in its stack frame) before the waker is done with
// it. This is the slow path by design: coroutines never use it.
#pragma once

#include <msgport/ports/context.h>

#include <condition_variable>
#include <mutex>

namespace msgport {

class ThreadWaiter final : public Waiter {
 public:
  ThreadWaiter() noexcept : Waiter(&ThreadWaiter::wake_fn) {}

  // Blocks until wake() has been called.
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return woken_; });
  }

 private:
  static void wake_fn(Waiter* w, Wake) noexcept {
    auto* self = static_cast<ThreadWaiter*>(w);
    std::lock_guard lock(self->mu_);
    self->woken_ = true;
    self->cv_.notify_one();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool woken_ = false;
};

}  // namespace msgport
