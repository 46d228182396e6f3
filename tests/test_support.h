// tests/test_support.h — small fixtures the ports tests share.
#pragma once

#include <msgport/ports/context.h>
#include <msgport/ports/message.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/port.h>
#include <sched.h>

#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <mutex>

namespace msgport::testing {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// Iteration counts for stress tests: millions normally, fewer under a sanitizer.
constexpr int stress(int normal, int sanitized) { return kSanitized ? sanitized : normal; }

// Whether this process may run on one CPU only (taskset -c 0). There, threads that race take
// turns by time slice: a test whose race needs two threads running at once skips, and a
// cross-core stress test runs fewer rounds (on_one_cpu(n)).
inline bool one_cpu() {
  cpu_set_t set;
  CPU_ZERO(&set);
  return sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) < 2;
}
inline long on_one_cpu(long rounds, long otherwise) { return one_cpu() ? rounds : otherwise; }

// A message carrying a value, the shape most tests use.
struct ValueMsg : Message {
  int value = 0;
};

// A minimal Context for a plain thread: schedule() queues, run_until() resumes on this thread.
class LoopContext final : public Context {
 public:
  void schedule(std::coroutine_handle<> h) noexcept override {
    {
      std::lock_guard lock(mu_);
      ready_.push_back(h);
      ++scheduled_;
    }
    cv_.notify_one();
  }

  // Runs scheduled coroutines on the calling thread, with this as its context, until done().
  template <class Done>
  void run_until(Done done) {
    Bind bind(this);
    while (!done()) {
      std::coroutine_handle<> h;
      {
        std::unique_lock lock(mu_);
        if (ready_.empty() && replies_.empty()) cv_.wait_for(lock, std::chrono::milliseconds(1));
        if (!replies_.empty()) {
          Message* m = replies_.front();
          replies_.pop_front();
          lock.unlock();
          detail::finish_posted_reply(*m, /*context_stopped=*/false);
          continue;
        }
        if (ready_.empty()) continue;
        h = ready_.front();
        ready_.pop_front();
      }
      refill_budget();
      h.resume();
    }
  }

  // Finishes a reply here, as a runtime core does (Context::post_reply).
  void post_reply(Message& m) noexcept override {
    {
      std::lock_guard lock(mu_);
      replies_.push_back(&m);
    }
    cv_.notify_one();
  }

  std::uint64_t scheduled() {
    std::lock_guard lock(mu_);
    return scheduled_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::coroutine_handle<>> ready_;
  std::deque<Message*> replies_;
  std::uint64_t scheduled_ = 0;
};

// An agent that keeps every message it is sent, for the test to reply, forward or inspect.
class HoldingPort final : public Port {
 public:
  int begin_msg(Message& m) override {
    held_.push_back(&m);
    return kAsync;
  }
  // The oldest message held; the test must know one is there.
  [[gnu::returns_nonnull]] Message* take() {
    if (held_.empty()) std::abort();
    Message* m = held_.front();
    held_.pop_front();
    return m;
  }
  std::size_t size() const { return held_.size(); }

 private:
  std::deque<Message*> held_;
};

}  // namespace msgport::testing
