// msgport/runtime/runtime.h — start cores, spawn lightweight threads on them, stop cleanly.
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
// Lifetimes (the rules the tests pin down):
//   * A thread ends when its task returns or throws (or stop cancels it). Its port is closed on
//     its own core then: queued requests, and requests it took and neither replied nor
//     forwarded, are replied -ECANCELED; later sends are refused -ECANCELED, also those already
//     on their way from other cores (runtime/thread_port.h).
//   * spawn() and stop() are ordered: a spawn either happens before stop (the thread is drained
//     or cancelled with the others) or throws std::logic_error("... after stop()").
//   * spawn(core, fn) keeps fn (and what it captured) alive for the thread's whole life.
//
// stop() closes every thread port: later messages are refused -ECANCELED.
//   StopMode::kDrain: what is queued is still served (then wait_port returns nullptr, so a
//     server loop ends), and stop waits for every lightweight thread to finish. If some thread
//     has not finished after RuntimeOptions::stop_grace (one serving a port of its own that
//     nobody closed, say), stop says which ones on stderr (core, thread, what its port holds)
//     and cancels them.
//   StopMode::kCancel: what is queued is replied -ECANCELED at once; the woken senders run on;
//     once all is quiet the cores stop and the threads still parked are destroyed (their frames,
//     before stop returns, whoever still holds a JoinHandle): every request they had taken and
//     not answered is replied -ECANCELED first, and join() / co_await on them throws
//     ThreadCancelled.
// Either way every core is joined and nothing leaks. Calling stop() twice is harmless.
// A destroyed thread's frame is freed: a message in it that still sits at a port of your own (not
// a thread port) must not be touched after stop; close such ports before stop (kDrain does not
// know them).
//
// Cancelling a thread: handle.cancel(), from any thread or core, any number of times, before
// the thread starts, while it runs, while it ends or after. It does not destroy the thread: it
// asks it to finish, and ends what it is waiting for.
//   * At once (any thread): the request is recorded. The thread polls it with
//     self.cancel_requested() (LwThread&), or co_await cancel_requested() in any of its Tasks.
//   * On the thread's core (carried there like any cross-core entry): its thread port is
//     cancelled as by stop(kCancel) — queued requests are replied -ECANCELED, later ones
//     refused — and the wait the thread is parked in ends: do_msg / wait_msg abort their message
//     (abort_msg; it is still replied exactly once, and the await returns that reply: -ECANCELED
//     if the holder cancelled it, its own result if it finished first; only a kMsgAbortable
//     message reaches its holder's abort hook), wait_port / wait_port_until return nullptr,
//     sleeps return, when_any aborts every message it sent and returns the first reply.
//   * From then on its awaits do not park quietly: a do_msg is begun when called (before its
//     await can tell whose it is) and, unless its agent answered at once, aborted at once by the
//     await; wait_port returns nullptr instead of waiting (its own port is empty and closed);
//     sleeps return at once.
//   Cancellation reaches the thread's task and every Task it co_awaits (and the tasks when_all
//   runs for it); a Task merely start()ed is not part of it. co_await on another thread's
//   JoinHandle, yield_now and migrate_to are not interrupted. A thread parked on another core than
//   its own (it migrated) sees the request at its next await there, but its current wait is not
//   interrupted.
//   The thread ends when its task returns (or throws): join() and co_await give that result, as
//   for any thread; ThreadCancelled is for threads stop(kCancel) destroyed. Call cancel() while
//   the runtime exists (after stop() it is harmless).
//
// Errors: spawning on a core that does not exist throws std::out_of_range; block_on from a core
// throws std::logic_error (it would wait on the very core that must run the task).
#pragma once

#include <absl/functional/function_ref.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/task.h>
#include <msgport/runtime/chrono.h>
#include <msgport/runtime/core.h>
#include <msgport/runtime/migrate.h>
#include <msgport/runtime/thread_port.h>

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

namespace msgport {

struct RuntimeOptions {
  int cores = 0;                     // 0: one per CPU in the process's affinity mask
  bool pin = true;                   // pin core i to the i-th allowed CPU
  std::size_t ring_capacity = 1024;  // entries per (sender, receiver) core pair
  // eventfd measured about 3x faster than MSG_RING at waking a sleeping core here (kernel 6.x,
  // DEFER_TASKRUN rings, under KVM): see bench/README.md.
  WakeMode wake = WakeMode::kEventfd;
  // The two durations take an absl::Duration or any std::chrono::duration (runtime/chrono.h):
  //   options.stop_grace = std::chrono::seconds(2);
  // An idle core polls its inboxes this long before it sleeps: a message arriving meanwhile
  // needs no wake-up. Zero: sleep at once.
  DurationSetting poll_before_sleep = absl::Microseconds(50);
  // How long stop(kDrain) waits for the threads to finish before it reports the ones left and
  // cancels them; stop(kCancel) waits this long for woken threads to settle at most.
  DurationSetting stop_grace = absl::Seconds(10);
};

// What join() and co_await on a JoinHandle throw for a thread that stop(kCancel) destroyed.
class ThreadCancelled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
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

  // Has JoinHandle::cancel() been called on this thread? (From its Tasks without `self`:
  // co_await cancel_requested().)
  bool cancel_requested() const noexcept { return cancellation_.requested(); }
  Cancellation& cancellation() noexcept { return cancellation_; }

 protected:
  explicit LwThread(Core& core) : core_(core), port_(core), cancellation_(&core) {}
  ~LwThread() = default;

 private:
  Core& core_;
  ThreadPort port_;
  Cancellation cancellation_;
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

  // Destroys the task's frame (stop(kCancel), once the runner's is gone): whatever it was parked
  // on lets go of it while the runtime is still there, not when the last handle goes.
  virtual void destroy_task() noexcept = 0;

  // The thread's exit, as a message that is in flight while it runs: joining is wait_msg.
  Message exit;
  std::exception_ptr error;
  std::atomic<bool> joining{false};   // join() or co_await began (once only)
  std::atomic<bool> observed{false};  // someone took the result (or the error)
  bool cancelled = false;             // destroyed by stop(kCancel); written before exit's reply
  Runtime* rt = nullptr;
  std::coroutine_handle<> runner;  // the running runner's frame; null once it ended
  std::shared_ptr<void> callable;  // spawn(core, fn): fn, alive as long as the thread
  std::size_t index = 0;           // in Runtime::threads_ (under its mutex)
  int id = 0;
};

template <class T>
class LwState final : public LwStateBase {
 public:
  using LwStateBase::LwStateBase;
  void destroy_task() noexcept override { task = Task<T>(); }
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
  // A thread is joined once: a second co_await or join() throws std::logic_error.
  auto operator co_await() {
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

  // From a plain thread: blocks until the task ends; its result, or its exception rethrown. On a
  // core it throws std::logic_error: blocking the core could keep the thread from ever ending
  // (co_await the handle instead).
  T join() {
    if (Core::current() != nullptr) {
      throw std::logic_error(
          "msgport: JoinHandle::join() on a core would block the core; co_await the handle");
    }
    check_joinable();
    wait_msg_blocking(st_->exit);
    return take();
  }

  // Cancel the thread (see "Cancelling a thread" at the top of this file). From any thread or
  // core; idempotent; harmless once the thread has ended, or while it ends. Does not wait.
  void cancel() const {
    if (st_ == nullptr || !st_->cancellation().request()) return;
    if (st_->exit.done()) return;  // ended: its core may be gone with the runtime
    st_->rt->cancel_thread(st_);
  }
  bool cancel_requested() const noexcept { return st_ && st_->cancel_requested(); }

  // Let it run on its own; a failure will be reported on stderr.
  void detach() noexcept { st_.reset(); }

 private:
  void check_joinable() const {
    if (!st_) throw std::logic_error("msgport: joining a JoinHandle that is empty or detached");
    if (st_->joining.exchange(true, std::memory_order_acq_rel)) {
      throw std::logic_error("msgport: a lightweight thread is joined once");
    }
  }
  T take() {
    st_->observed.store(true, std::memory_order_release);
    if (st_->cancelled) {
      throw ThreadCancelled("msgport: lightweight thread " + std::to_string(st_->id) +
                            " was cancelled by stop(StopMode::kCancel) before it finished");
    }
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
    return spawn_with<T>(core, [&](detail::LwStateBase&) { return std::move(task); });
  }
  // Runs fn(self) as a lightweight thread on core `core`; fn returns a Task<T> and may keep
  // `self` (its core and thread port) for the thread's lifetime. fn itself (a lambda and what it
  // captured) is kept alive as long as the thread, so a coroutine lambda may use its captures.
  template <class F>
  auto spawn(int core, F fn)
      -> JoinHandle<typename decltype(fn(std::declval<LwThread&>()))::value_type> {
    using T = typename decltype(fn(std::declval<LwThread&>()))::value_type;
    auto kept = std::make_shared<F>(std::move(fn));
    return spawn_with<T>(core, [&](detail::LwStateBase& self) {
      self.callable = kept;
      return (*kept)(self);
    });
  }

  // From a plain thread: runs task on core 0 and blocks until it ends. From a core it throws
  // std::logic_error: that core could not run the task while it waits (co_await it instead).
  template <class T>
  T block_on(Task<T> task) {
    if (Core::current() != nullptr) {
      throw std::logic_error(
          "msgport: block_on called on a core would block the core that must run the task; "
          "co_await the task (or a spawned thread's JoinHandle) instead");
    }
    return spawn(0, std::move(task)).join();
  }

  void stop(StopMode mode = StopMode::kDrain);

  // Counters of every core, and a readable dump of them (with each core's io_uring setup).
  // From any thread.
  std::vector<CoreCounters> counters() const;
  std::string dump_counters() const;

  // All of core `core`'s counters and features at once (Core::snapshot: its own, its device
  // port's, its thread ports'), taken on that core: from a plain thread it is carried there and
  // back (blocking until the core gets to it; a stopped core's is taken here). On that core
  // itself it is taken at once; on another core it throws std::logic_error (blocking would stall
  // this core: co_await migrate_to(rt.core(i)) and call Core::snapshot() there). Throws
  // std::out_of_range for a core that does not exist.
  CoreSnapshot snapshot(int core);
  // Every core's, printed one after the other (from a plain thread).
  std::string dump_snapshots();

 private:
  friend class Core;
  friend class detail::LwStateBase;
  template <class>
  friend class JoinHandle;

  template <class T, class Make>
  JoinHandle<T> spawn_with(int core_id, Make make) {
    Core& c = core(core_id);
    auto st = std::make_shared<detail::LwState<T>>(c);
    st->task = make(*st);
    st->task.inherit_cancellation(&st->cancellation());
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
    // A thread that migrated ends at home: its port is closed on its own core.
    co_await migrate_to(st->core());
    st->rt->thread_ended(*st);
  }

  void start_thread(std::shared_ptr<detail::LwStateBase> st, detail::LwRunner runner);
  // JoinHandle::cancel(): interrupt the thread's wait on its own core.
  void cancel_thread(std::shared_ptr<detail::LwStateBase> st);
  void thread_ended(detail::LwStateBase& st) noexcept;
  // Runs fn(thread) on each thread's own core (here, for a core that has stopped); returns once
  // all have run.
  void on_thread_cores(const std::vector<std::shared_ptr<detail::LwStateBase>>& threads,
                       absl::FunctionRef<void(detail::LwStateBase&)> fn);
  std::vector<std::shared_ptr<detail::LwStateBase>> live_threads();
  // stop(kDrain) took longer than stop_grace: say which threads are left, and what they hold.
  void report_stuck();
  void destroy_left();

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
