// msgport/ports/spin_lock.h — the short lock that guards a port's queue.
//
// Held only for a few pointer updates (never across an agent, a wake-up or a reply), so a
// test-and-test-and-set spin with a CPU pause is cheaper than a mutex: one atomic exchange to
// take it uncontended, a plain release store to give it back. try_lock() is the seeds'
// try_mplock(): take it if free, never wait.
#pragma once

#include <atomic>

namespace msgport {

class SpinLock {
 public:
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }

  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) pause();
    }
  }

  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  static void pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  std::atomic<bool> locked_{false};
};

}  // namespace msgport
