// runtime/runtime.h — start cores, spawn lightweight threads on them, stop cleanly.
//
//     msgport::Runtime rt;                          // one core per CPU this process may use
//     auto worker = rt.spawn(1, serve(...));        // a lightweight thread on core 1
//     int r = rt.block_on(main_task(rt));           // run a task on core 0, wait for it here
//     rt.stop();                                    // drain: let running work finish
//
// A lightweight thread is a Task running on one core; it stays there (unless it migrates) and
// has its own thread port (LwThread::port()) that any core may send to. spawn() returns a
// JoinHandle: co_await it (from any core) or join() it (from a plain thread) for the task's
// result; an exception in the task is rethrown there. A failure nobody takes — the handle was
// detached or dropped — is reported on stderr when the thread ends, never swallowed.
//
// stop() closes every thread port: later messages are refused -ECANCELED.
//   StopMode::kDrain: what is queued is still served (then wait_port returns nullptr, so a
//     server loop ends), and stop waits for every lightweight thread to finish.
//   StopMode::kCancel: what is queued is replied -ECANCELED at once; the woken senders run on;
//     once all is quiet the cores stop and the threads still parked are destroyed.
// Either way every core is joined and nothing leaks. Calling stop() twice is harmless; spawning
// after stop throws std::logic_error.
//
// Errors: spawning on a core that does not exist throws std::out_of_range.
#pragma once

#include <atomic>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ports/ops.h"
#include "ports/task.h"
#include "runtime/core.h"
#include "runtime/thread_port.h"

namespace msgport {

struct RuntimeOptions {
  int cores = 0;                     // 0: one per CPU in the process's affinity mask
  bool pin = true;                   // pin core i to the i-th allowed CPU
  std::size_t ring_capacity = 1024;  // entries per (sender, receiver) core pair
  // eventfd measured about 3x faster than MSG_RING at waking a sleeping core here (kernel 6.x,
  // DEFER_TASKRUN rings, under KVM): see bench/README.md.
  WakeMode wake = WakeMode::kEventfd;
  // An idle core polls its inboxes this long before it sleeps: a message arriving meanwhile
  // needs no wake-up. Zero: sleep at once.
  absl::Duration poll_before_sleep = absl::Microseconds(50);
};

enum class StopMode { kDrain, kCancel };

class Runtime;

// A lightweight thread's own parts: its core and its thread port. As in DragonFly (td_msgport)
// the thread port is both where requests to the thread queue and the thread's reply port:
// m.set_reply_port(&self.port()) brings m's reply back there, from any core, and wait_port
// returns it (done) among the requests.
class LwThread {
 public:
  Core& core() const noexcept { return core_; }
  ThreadPort& port() noexcept { return port_; }

 protected:
  explicit LwThread(Core& core) : core_(core), port_(core) {}
  ~LwThread() = default;

 private:
  Core& core_;
  ThreadPort port_;
};

namespace detail {

// The coroutine that runs one lightweight thread's task on its core; it frees itself at the end.
struct LwRunner {
  struct promise_type : LineIsolatedFrame {
    LwRunner get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  std::coroutine_handle<promise_type> handle;
};

class LwStateBase : public LwThread {
 public:
  explicit LwStateBase(Core& core) : LwThread(core) {}
  virtual ~LwStateBase();

  // The thread's exit, as a message that is in flight while it runs: joining is wait_msg.
  Message exit;
  std::exception_ptr error;
  std::atomic<bool> observed{false};  // someone took the result (or the error)
  Runtime* rt = nullptr;
  std::coroutine_handle<> runner;  // the running runner's frame; null once it ended
  int id = 0;
};

template <class T>
class LwState final : public LwStateBase {
 public:
  using LwStateBase::LwStateBase;
  Task<T> task;
  std::optional<std::conditional_t<std::is_void_v<T>, char, T>> value;
};

}  // namespace detail

template <class T>
class JoinHandle {
 public:
  JoinHandle() = default;
  explicit JoinHandle(std::shared_ptr<detail::LwState<T>> st) : st_(std::move(st)) {}

  bool valid() const noexcept { return st_ != nullptr; }
  bool done() const noexcept { return st_ && st_->exit.done(); }
  ThreadPort& port() const noexcept { return st_->port(); }
  Core& core() const noexcept { return st_->core(); }

  // co_await handle: the task's result (rethrows its exception). Suspends until it ends.
  auto operator co_await() noexcept {
    struct Awaiter {
      JoinHandle& h;
      WaitMsg wait;
      bool await_ready() noexcept { return wait.await_ready(); }
      bool await_suspend(std::coroutine_handle<> c) noexcept { return wait.await_suspend(c); }
      T await_resume() { return h.take(); }
    };
    check_joinable();
    return Awaiter{*this, WaitMsg(st_->exit)};
  }

  // From a plain thread: blocks until the task ends; its result, or its exception rethrown.
  T join() {
    check_joinable();
    wait_msg_blocking(st_->exit);
    return take();
  }

  // Let it run on its own; a failure will be reported on stderr.
  void detach() noexcept { st_.reset(); }

 private:
  void check_joinable() const {
    if (!st_) throw std::logic_error("msgport: joining a JoinHandle that is empty or detached");
    if (st_->observed.load(std::memory_order_acquire)) {
      throw std::logic_error("msgport: a lightweight thread is joined once");
    }
  }
  T take() {
    st_->observed.store(true, std::memory_order_release);
    if (st_->error) std::rethrow_exception(st_->error);
    if constexpr (!std::is_void_v<T>) return std::move(*st_->value);
  }

  std::shared_ptr<detail::LwState<T>> st_;
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options = {});
  ~Runtime();  // stop(StopMode::kCancel) if still running
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int size() const noexcept { return static_cast<int>(cores_.size()); }
  Core& core(int i);  // throws std::out_of_range
  bool stopped() const noexcept { return stopped_.load(std::memory_order_acquire); }
  WakeMode wake_mode() const noexcept { return options_.wake; }

  // Runs task as a lightweight thread on core `core`.
  template <class T>
  JoinHandle<T> spawn(int core, Task<T> task) {
    return spawn_with<T>(core, [&](LwThread&) { return std::move(task); });
  }
  // Runs fn(self) as a lightweight thread on core `core`; fn returns a Task<T> and may keep
  // `self` (its core and thread port) for the thread's lifetime.
  template <class F>
  auto spawn(int core, F fn)
      -> JoinHandle<typename decltype(fn(std::declval<LwThread&>()))::value_type> {
    using T = typename decltype(fn(std::declval<LwThread&>()))::value_type;
    return spawn_with<T>(core, [&](LwThread& self) { return fn(self); });
  }

  // From a plain thread: runs task on core 0 and blocks until it ends.
  template <class T>
  T block_on(Task<T> task) {
    return spawn(0, std::move(task)).join();
  }

  void stop(StopMode mode = StopMode::kDrain);

  // Counters of every core, and a readable dump of them.
  std::vector<CoreCounters> counters() const;
  std::string dump_counters() const;

 private:
  friend class Core;
  friend class detail::LwStateBase;

  template <class T, class Make>
  JoinHandle<T> spawn_with(int core_id, Make make) {
    Core& c = core(core_id);
    auto st = std::make_shared<detail::LwState<T>>(c);
    st->task = make(*st);
    start_thread(st, run<T>(st));
    return JoinHandle<T>(std::move(st));
  }

  template <class T>
  static detail::LwRunner run(std::shared_ptr<detail::LwState<T>> st) {
    try {
      if constexpr (std::is_void_v<T>) {
        co_await st->task;
        st->value.emplace('\0');
      } else {
        st->value.emplace(co_await st->task);
      }
    } catch (...) {
      st->error = std::current_exception();
    }
    st->rt->thread_ended(*st);
  }

  void start_thread(std::shared_ptr<detail::LwStateBase> st, detail::LwRunner runner);
  void thread_ended(detail::LwStateBase& st) noexcept;
  void close_ports(const std::vector<ThreadPort*>& ports, bool cancel);

  RuntimeOptions options_;
  std::vector<std::unique_ptr<Core>> cores_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> stopping_{false};

  // Live lightweight threads (for drain and cancel).
  std::mutex threads_mu_;
  std::vector<std::shared_ptr<detail::LwStateBase>> threads_;
  std::atomic<std::int64_t> live_{0};
  int next_thread_id_ = 0;
};

}  // namespace msgport
