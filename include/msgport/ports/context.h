// msgport/ports/context.h — where a parked coroutine lives, and how it is woken.
//
// A Context is the home of the coroutines that run on one OS thread (in the runtime layer: one
// core). The ports layer knows no scheduler; it only needs two things from one:
//
//   * Context::current() — the context of the calling thread, or nullptr on a plain thread.
//   * schedule(h)        — make h run later on that context. Called from any thread.
//
// A coroutine that parks on a message or on a port records its home (Context::current() at the
// time it parks). Whoever wakes it then does one of two things:
//
//   * Wake::kDirect (a reply to a parked sender): resume it at once, no queueing, when the
//     replier runs on the waiter's home and the home is not holding back (holding(): the
//     runtime's backpressure); otherwise hand it to the home's schedule().
//   * Wake::kScheduled (a message arriving at a port whose owner is parked): hand the owner to
//     its home's schedule(), even from the home itself, so a send never runs the receiving
//     lightweight thread inside the sender (DragonFly's putport wakes the thread).
//   A waiter with no home (parked where there is no context) is resumed at once by whoever wakes
//   it, in both cases: there is nowhere else to run it.
//
// Waiter is the record a parked party leaves on a message or a port: a coroutine (CoWaiter) or a
// plain thread blocked without spinning (ThreadWaiter, see ports/thread_waiter.h). Waking is one
// indirect call. Nothing here allocates.
#pragma once

#include <atomic>
#include <climits>
#include <coroutine>
#include <cstdint>

namespace msgport {

class CoWaiter;
class Message;

class Context {
 public:
  // Run h on this context later. Thread-safe; must not run h inline.
  virtual void schedule(std::coroutine_handle<> h) noexcept = 0;

  // Finish reply_msg(m) on this context later (thread-safe, never inline). Used when a message a
  // single-context port held here (its sender may park with a plain store, ports/ops.h) is
  // replied from another thread: a holder that migrated, or handed the message over. The default
  // cannot, and stops the process with a broken-rule report; the runtime's cores can.
  virtual void post_reply(Message& m) noexcept;

  // Run the coroutine parked in w on this context later (thread-safe, never inline). A context
  // may use the waiter record itself to queue it, so that waking never allocates; the default
  // schedules w's handle. w is the coroutine's: it must not be touched once the coroutine runs.
  virtual void post(CoWaiter& w) noexcept;

  // The calling thread's context, or nullptr.
  static Context* current() noexcept { return current_; }

  // True once nothing will ever run on this context again (a runtime's core once stop() has
  // sealed it). A coroutine parked here may still be woken, but it never resumes: a port about
  // to grant it something refuses it instead (runtime/sync_request.h). Thread-safe.
  virtual bool finished() const noexcept { return false; }

  // True while the context holds back resumptions (the runtime's backpressure: a core whose
  // rings to other cores are full), or has spent its budget of direct resumptions. A waiter
  // woken on its own context then does not resume inline but is posted, to run once the context
  // lets go.
  bool holding() const noexcept { return holding_ || budget_ == 0; }

  // Direct resumption is a privilege with a budget: a chain of replies resuming waiters inline
  // (a client and a server on one context answering each other) runs at most kDirectBudget
  // resumptions; after that, wake-ups are posted and the context's loop gets back to its other
  // work (inboxes, timers, completions) first. A context whose loop refills the budget
  // (refill_budget(), once per resumption it makes, as the runtime's cores do) opts in; one
  // that never does has no budget.
  static constexpr std::uint32_t kDirectBudget = 128;

  // For a waker about to resume a waiter of this context inline: false (and nothing spent) when
  // it must post instead.
  bool spend_direct() noexcept {
    if (budget_ == 0) return false;  // spent, or holding back (set_holding empties it)
    --budget_;
    return true;
  }

  // Makes `ctx` the calling thread's context for the lifetime of the guard.
  class Bind {
   public:
    explicit Bind(Context* ctx) noexcept : saved_(current_) { current_ = ctx; }
    ~Bind() { current_ = saved_; }
    Bind(const Bind&) = delete;
    Bind& operator=(const Bind&) = delete;

   private:
    Context* saved_;
  };

 protected:
  ~Context() = default;
  // Only the context's own thread sets it, and reads it through holding().
  void set_holding(bool on) noexcept {
    holding_ = on;
    budget_ = on ? 0 : kDirectBudget;
  }
  // The context's own thread, from its loop: a new budget of direct resumptions (none while it
  // holds back).
  void refill_budget() noexcept { budget_ = holding_ ? 0 : kDirectBudget; }

 private:
  static inline thread_local Context* current_ = nullptr;
  // Written by the context's own thread on every resumption: on a cache line of its own, apart
  // from what other threads read of the context (the vtable pointer, a derived class's fields).
  alignas(64) std::uint32_t budget_ = UINT32_MAX;  // no budget until the loop refills it
  bool holding_ = false;
};

enum class Wake { kDirect, kScheduled };

// The record a parked party leaves behind. wake() is called exactly once per park.
class Waiter {
 public:
  void wake(Wake how = Wake::kDirect) noexcept { wake_(this, how); }

  // The context the waiter belongs to; nullptr for a plain thread. Valid once published.
  Context* home() const noexcept { return home_; }

 protected:
  using WakeFn = void (*)(Waiter*, Wake) noexcept;
  explicit Waiter(WakeFn fn) noexcept : wake_(fn), home_(nullptr) {}
  Waiter() noexcept {}  // CoWaiter: wake_ and home_ are set before it is published (arm)
  ~Waiter() = default;
  WakeFn wake_;
  Context* home_;
};

// A coroutine parked on a message or a port, and the context it belongs to.
//
// Awaitables embed one; it is written only when they really park (arm), so an await that
// completes at once pays nothing for it.
class CoWaiter final : public Waiter {
 public:
  CoWaiter() noexcept {}  // nothing written until arm()

  // Records the coroutine and its home; call in await_suspend before publishing the waiter.
  void arm(std::coroutine_handle<> h) noexcept {
    wake_ = &CoWaiter::wake_fn;
    handle_ = h.address();
    home_ = Context::current();
  }

  std::coroutine_handle<> handle() const noexcept {
    return std::coroutine_handle<>::from_address(handle_);
  }

  // For a context that queues posted waiters intrusively (Context::post).
  CoWaiter* next_posted = nullptr;

 private:
  static void wake_fn(Waiter* w, Wake how) noexcept {
    auto* self = static_cast<CoWaiter*>(w);
    // Read both before resuming: the coroutine owns this record and may reuse it.
    Context* home = self->home();
    if (home == nullptr ||
        (how == Wake::kDirect && home == Context::current() && home->spend_direct())) {
      self->handle().resume();  // a tail call: nothing to save around it
    } else {
      post_home(self, home);
    }
  }
  // Out of line, so that the compiler does not inline (and devirtualize) a context's post() into
  // wake_fn, whose direct path would then save and restore six registers around the resume.
  [[gnu::noinline]] static void post_home(CoWaiter* self, Context* home) noexcept {
    home->post(*self);
  }

  void* handle_;  // valid once armed
};

inline void Context::post(CoWaiter& w) noexcept { schedule(w.handle()); }

class Cancellation;
// The Cancellation a suspending coroutine runs under: its promise's `cancellation` member (a
// Task's: ports/task.h), or nullptr for a promise without one.
template <class P>
Cancellation* cancellation_of(std::coroutine_handle<P> h) noexcept {
  if constexpr (requires { h.promise().cancellation; }) {
    return h.promise().cancellation;
  } else {
    return nullptr;
  }
}

// The cancellation of a unit of work whose coroutines run on one home context (the runtime's
// lightweight thread: JoinHandle::cancel()). Any thread may request it; the awaitables of
// ports/ops.h, ports/queue_port.h and the runtime then stop waiting (each documents how).
//
// A Task coroutine knows the Cancellation it runs under (its promise carries it, and passes it
// to every Task it co_awaits); the awaitables that honour it read it from the promise when they
// are about to park (cancellation_of(h) in await_suspend): an await that completes at once never
// looks at it. One that parks on the home context registers how to interrupt it (a CancelWait;
// several may wait at once: tasks under when_all); the canceller, on the home context after
// request(), calls interrupt() to end them all. Registration and interrupt happen on the home
// context only, so they need no atomics; a coroutine parked elsewhere (a thread that migrated)
// is not interrupted, but sees requested() at its next await.
class CancelWait;

class Cancellation {
 public:
  using Interrupt = void (*)(void* arg) noexcept;

  explicit Cancellation(Context* home = nullptr) noexcept : home_(home) {}
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  // Any thread. Acquires what the canceller wrote before request().
  bool requested() const noexcept { return requested_.load(std::memory_order_acquire); }
  // Any thread: true the first time only.
  bool request() noexcept { return !requested_.exchange(true, std::memory_order_acq_rel); }

  Context* home() const noexcept { return home_; }

  // On the home context: end every registered wait. An interrupt may resume its coroutine
  // inline; the list is re-read after each.
  inline void interrupt() noexcept;

 private:
  friend class CancelWait;
  std::atomic<bool> requested_{false};
  Context* home_;
  CancelWait* waits_ = nullptr;  // the home context's
};

// One parked await's entry in its Cancellation's list. The awaitable embeds it, enters when it
// parks, and must leave when it runs again or is destroyed parked. Only owner_ is written when
// it is made (awaitables are made on every await: the rest is written by enter()).
class CancelWait {
 public:
  CancelWait() noexcept {}
  CancelWait(const CancelWait&) = delete;
  CancelWait& operator=(const CancelWait&) = delete;

  // Registers fn(arg) to end this wait; only on c's home context (the return says whether).
  // `here` is the caller's context (Context::current()), when it has it at hand.
  bool enter(Cancellation& c, Cancellation::Interrupt fn, void* arg) noexcept {
    return enter(c, fn, arg, Context::current());
  }
  bool enter(Cancellation& c, Cancellation::Interrupt fn, void* arg, Context* here) noexcept {
    if (here != c.home_) return false;
    owner_ = &c;
    fn_ = fn;
    arg_ = arg;
    prev_ = nullptr;
    next_ = c.waits_;
    if (next_ != nullptr) next_->prev_ = this;
    c.waits_ = this;
    return true;
  }
  // Idempotent: an interrupt has already taken it off.
  void leave() noexcept {
    if (owner_ == nullptr) return;
    if (prev_ != nullptr) {
      prev_->next_ = next_;
    } else {
      owner_->waits_ = next_;
    }
    if (next_ != nullptr) next_->prev_ = prev_;
    owner_ = nullptr;
  }

 private:
  friend class Cancellation;
  Cancellation* owner_ = nullptr;  // non-null while entered; the rest is valid then
  Cancellation::Interrupt fn_;
  void* arg_;
  CancelWait* prev_;
  CancelWait* next_;
};

inline void Cancellation::interrupt() noexcept {
  while (CancelWait* w = waits_) {
    Cancellation::Interrupt fn = w->fn_;
    void* arg = w->arg_;
    w->leave();
    fn(arg);
  }
}

}  // namespace msgport
