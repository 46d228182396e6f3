// msgport/ports/task.h — Task<T>: the coroutine type msgport code is written in.
//
// A Task is lazy: creating one runs nothing. It starts when it is awaited (co_await task: the
// awaiting coroutine continues when the task finishes, by symmetric transfer — no queue, no
// recursion), when start() is called (top level: it runs until its first suspension), or under
// sync_wait() (a plain thread blocks until it finishes).
//
// Awaiting a task that is already done does not suspend. An exception thrown in the task is
// rethrown to whoever takes its result (co_await, result(), sync_wait). The result is taken once:
// a second co_await or result() throws std::logic_error. A Task owns its frame
// and destroys it when the Task object goes away; destroying a Task that is suspended (parked on
// a message) destroys the frame with it, so keep it until it is done. For that reason start()
// does not compile on a temporary (`make_task().start();`): name the Task, and keep it.
//
// A Task may run under a Cancellation (ports/context.h; the runtime's lightweight threads do):
// a Task it co_awaits inherits it, and the awaitables of ports/ and runtime/ honour it when they
// would park. co_await cancel_requested() tells a Task whether it has been requested.
//
// Frames are allocated with operator new, padded so that no cache line holds a frame and
// another allocation: two coroutines running on different cores never share a line by accident
// of the allocator. Nothing else here allocates. The runtime layer builds its lightweight threads
// on this type.
#pragma once

#include <msgport/ports/check.h>
#include <msgport/ports/context.h>
#include <msgport/ports/thread_waiter.h>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <new>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace msgport {

template <class T = void>
class Task;

namespace detail {

template <class T>
struct TaskPromise;

// co_await task.
template <class T>
struct TaskAwaiter {
  std::coroutine_handle<TaskPromise<T>> h;
  bool await_ready() noexcept { return h.done(); }
  // The task runs under the awaiting coroutine's cancellation, if that has one.
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> awaiting) noexcept {
    if (Cancellation* c = cancellation_of(awaiting)) h.promise().cancellation = c;
    h.promise().continuation = awaiting;
    return h;
  }
  T await_resume() { return h.promise().take(); }
};

// A promise base whose coroutine frames share no cache line with other allocations: a frame is
// placed 48 bytes into a block 96 bytes larger (malloc's blocks are 16-byte aligned, and frame
// sizes are rounded to 16), so the lines it touches hold only its own padding besides it. This
// keeps plain malloc's speed; aligned operator new costs about three times as much here.
struct LineIsolatedFrame {
  static constexpr std::size_t kPad = 48;
  static std::size_t block(std::size_t n) noexcept {
    return ((n + 15) & ~std::size_t{15}) + 2 * kPad;
  }
  static void* operator new(std::size_t n) {
    return static_cast<char*>(::operator new(block(n))) + kPad;
  }
  static void operator delete(void* p) noexcept { ::operator delete(static_cast<char*>(p) - kPad); }
};

struct TaskPromiseBase : LineIsolatedFrame {
  std::coroutine_handle<> continuation;
  std::exception_ptr error;
  // The cancellation this coroutine runs under (a lightweight thread's), or nullptr. A Task
  // co_awaited from here runs under it too.
  Cancellation* cancellation = nullptr;

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() noexcept { return false; }
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
      std::coroutine_handle<> next = h.promise().continuation;
      return next ? next : std::noop_coroutine();
    }
    void await_resume() noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }

  void unhandled_exception() noexcept { error = std::current_exception(); }
  void rethrow_if_failed() {
    if (taken) throw std::logic_error("msgport: a task's result is taken once (awaited twice?)");
    taken = true;
    if (error) std::rethrow_exception(error);
  }
  bool taken = false;
};

template <class T>
struct TaskPromise : TaskPromiseBase {
  std::optional<T> value;
  Task<T> get_return_object() noexcept;
  template <class U>
  requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) { value.emplace(std::forward<U>(v)); }
  T take() {
    rethrow_if_failed();
    return std::move(*value);
  }
};

template <>
struct TaskPromise<void> : TaskPromiseBase {
  Task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() { rethrow_if_failed(); }
};

}  // namespace detail

template <class T>
class [[nodiscard]] Task {
 public:
  using promise_type = detail::TaskPromise<T>;
  using Handle = std::coroutine_handle<promise_type>;
  using value_type = T;

  Task() noexcept = default;
  explicit Task(Handle h) noexcept : h_(h) {}
  Task(Task&& other) noexcept : h_(std::exchange(other.h_, {})) {}
  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      if (h_) h_.destroy();
      h_ = std::exchange(other.h_, {});
    }
    return *this;
  }
  ~Task() {
    if (h_) h_.destroy();
  }

  bool valid() const noexcept { return static_cast<bool>(h_); }

  // Runs the task under c (ports/context.h: Cancellation); a Task co_awaited from a Task
  // inherits its awaiter's. The runtime sets a lightweight thread's.
  void inherit_cancellation(Cancellation* c) noexcept {
    if (h_) h_.promise().cancellation = c;
  }
  // The coroutine frame (owned by this Task).
  std::coroutine_handle<> frame() const noexcept { return h_; }
  bool done() const noexcept { return h_ && h_.done(); }

  // Runs the task until its first suspension, with nobody to continue when it finishes. Only on
  // a Task that outlives the run: a temporary would destroy the frame while it is parked.
  void start() & {
    MSGPORT_CHECK_RULE(h_ && !h_.done(), "Task::start: a task runs once");
    h_.resume();
  }
  void start() && = delete;  // Task::start() on a temporary: keep the Task until it is done

  // The result of a finished task; rethrows its exception.
  T result() {
    MSGPORT_CHECK_RULE(done(), "Task::result: the task has not finished");
    return h_.promise().take();
  }

  // co_await task: start it (if not started) and continue when it finishes.
  auto operator co_await() noexcept {
    MSGPORT_CHECK_RULE(h_, "co_await on an empty Task");
    return detail::TaskAwaiter<T>{h_};
  }

  // co_await task.finished(): for a task that was start()ed and may be parked: continue when it
  // finishes (at once if it has), without resuming it and without taking its result. The task
  // must finish on the awaiting coroutine's thread (its own core).
  auto finished() noexcept {
    struct Awaiter {
      Handle h;
      bool await_ready() noexcept { return h.done(); }
      void await_suspend(std::coroutine_handle<> awaiting) noexcept {
        h.promise().continuation = awaiting;
      }
      void await_resume() noexcept {}
    };
    return Awaiter{h_};
  }

  // co_await task.when_done(): as co_await, without taking the result.
  auto when_done() noexcept {
    struct Awaiter {
      Handle h;
      bool await_ready() noexcept { return h.done(); }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
        h.promise().continuation = awaiting;
        return h;
      }
      void await_resume() noexcept {}
    };
    return Awaiter{h_};
  }

 private:
  Handle h_;
};

namespace detail {

template <class T>
Task<T> TaskPromise<T>::get_return_object() noexcept {
  return Task<T>(std::coroutine_handle<TaskPromise<T>>::from_promise(*this));
}
inline Task<void> TaskPromise<void>::get_return_object() noexcept {
  return Task<void>(std::coroutine_handle<TaskPromise<void>>::from_promise(*this));
}

// An eager coroutine that frees itself when it ends; sync_wait's driver.
struct Detached {
  struct promise_type {
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

template <class T>
Detached drive(Task<T>& task, Waiter& done) {
  co_await task.when_done();
  done.wake();
}

}  // namespace detail

// co_await cancel_requested(): in a Task, whether the cancellation it runs under (a lightweight
// thread's: JoinHandle::cancel()) has been requested. Never suspends; false outside one.
class [[nodiscard]] CancelRequested {
 public:
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    c_ = cancellation_of(h);
    return false;  // never suspends: the promise is all it wanted
  }
  bool await_resume() const noexcept { return c_ != nullptr && c_->requested(); }

 private:
  Cancellation* c_ = nullptr;
};
inline CancelRequested cancel_requested() noexcept { return {}; }

namespace detail {
// co_await detail::own_cancellation(): the Cancellation the awaiting Task runs under (when_all
// passes it to the tasks it starts).
class [[nodiscard]] OwnCancellation {
 public:
  bool await_ready() const noexcept { return false; }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    c_ = cancellation_of(h);
    return false;
  }
  Cancellation* await_resume() const noexcept { return c_; }

 private:
  Cancellation* c_ = nullptr;
};
inline OwnCancellation own_cancellation() noexcept { return {}; }
}  // namespace detail

// Runs task to completion from a plain thread, blocking (without spinning) while it is parked,
// and returns its result or rethrows its exception. The task's reply may come from any thread.
template <class T>
T sync_wait(Task<T> task) {
  ThreadWaiter waiter;
  detail::drive(task, waiter);
  waiter.wait();
  return task.result();
}

}  // namespace msgport
