// msgport/runtime/select.h — waiting for the first of several things: when_any (the first of
// several messages to be replied), wait_port_until / wait_port_for (a port or a deadline).
//
//   AnyResult r = co_await when_any(AnyMsg(disk, read), AnyMsg(cache, lookup));
//   if (r.index == 1) use(r.result);        // the cache answered first; the read was aborted
//
//   Message* m = co_await wait_port_for(self.port(), absl::Milliseconds(5));
//   if (m == nullptr && !self.port().closed()) ...   // 5 ms with nothing queued
//
// when_any(AnyMsg(port, m)...) or when_any(std::span<AnyMsg>)
//   Sends each message to its port (do_msg's way: the reply comes back to when_any, not to
//   m.reply_port()), in order, when awaited. The first message to be replied wins; every other
//   one that was sent is aborted (abort_msg) and still replied exactly once: -ECANCELED if its
//   holder cancelled it, its own result if it finished first (a holder that took it may ignore
//   the abort and reply when it is done: when_any waits for that reply). when_any completes only
//   once every message it sent has been replied, so the caller may reuse or free all of them on
//   return. Each message is marked kMsgAbortable.
//   Sending stops as soon as a message is known to be replied (its agent answered at once, or its
//   reply came while when_any was still sending): the messages after it are not sent and are left
//   as they were. AnyResult::sent says how many were (the first `sent`).
//   Returns the winner's index and result. A winner is the first reply, whatever its result: a
//   port that refuses a message (-ECANCELED, a closed port) answers it first.
//   The messages may go to any kind of port, on any core: a thread port on this core or another,
//   a device port, a port of your own. Nothing is allocated when the first message is answered at
//   once; otherwise one coroutine frame, for the part after the first reply.
//   Under a lightweight thread's cancellation (JoinHandle::cancel()) every message it sent is
//   aborted at once, and the first reply still wins (usually -ECANCELED).
//   The empty list: {AnyResult::kNone, -EINVAL, 0}.
//
// wait_port_until(port, deadline), wait_port_for(port, duration)
//   wait_port (ports/queue_port.h) with a deadline, on a core: the next message, or nullptr when
//   the deadline passes with nothing queued — or, as wait_port, when the port is closed and
//   drained (tell them apart by port.closed()). A queued message is returned without looking at
//   the clock; a deadline already past returns nullptr without waiting. The timer is disarmed
//   when a message arrives first. A message arriving as the deadline passes is never lost: the
//   port either hands it to this wait (returned now) or finds the owner gone (it stays queued for
//   the next wait). Off a core these throw std::logic_error. Under a lightweight thread's
//   cancellation they return nullptr instead of waiting, like wait_port.
#pragma once

#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/queue_port.h>
#include <msgport/ports/task.h>
#include <msgport/runtime/chrono.h>
#include <msgport/runtime/core.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>

namespace msgport {

struct AnyResult {
  static constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t index = kNone;  // the winner: the first message replied
  int result = -EINVAL;       // its result
  std::size_t sent = 0;       // how many were sent: the first `sent` messages
};

namespace detail {
class WhenAnyState;

// The record when_any parks on one message: its wake tells the state which message replied.
class AnyWaiter final : public Waiter {
 public:
  AnyWaiter() noexcept : Waiter(&wake_fn) {}
  AnyWaiter(const AnyWaiter&) noexcept : Waiter(&wake_fn) {}  // an unarmed record
  AnyWaiter& operator=(const AnyWaiter&) = delete;

  void arm(WhenAnyState* state, std::size_t index) noexcept {
    state_ = state;
    index_ = index;
    home_ = Context::current();
  }

 private:
  static void wake_fn(Waiter* w, Wake how) noexcept;
  WhenAnyState* state_ = nullptr;
  std::size_t index_ = 0;
};
}  // namespace detail

// A message and the port when_any sends it to. It holds when_any's record for the message, so
// that a span of them needs no allocation; keep it in place while when_any runs.
class AnyMsg {
 public:
  template <PortType P>
  AnyMsg(P& port, Message& m) noexcept : port_(&port), msg_(&m) {}

  Port& port() const noexcept { return *port_; }
  Message& msg() const noexcept { return *msg_; }

 private:
  friend class detail::WhenAnyState;
  Port* port_;
  Message* msg_;
  detail::AnyWaiter waiter_;
  bool parked_ = false;   // when_any parked on it (its reply wakes waiter_)
  bool aborted_ = false;  // when_any aborted it
};

namespace detail {

// The shared part of when_any. The sending and the aborts run on the caller's context; replies
// may come from any thread and meet here through three atomics:
//   winner_  the first reply's index (compare-exchange from kNone)
//   phase_   whether the finishing coroutine waits for the first reply (kWaiting) or it came
//            (kFired): exactly one of a winner's wake and the coroutine's own check sees the other
//   left_    replies still to come for messages parked on, plus one for the coroutine itself: the
//            one that takes it to zero continues the coroutine (it has nothing left to touch then)
class WhenAnyState {
 public:
  explicit WhenAnyState(std::span<AnyMsg> msgs) noexcept : msgs_(msgs) {}
  WhenAnyState(const WhenAnyState&) = delete;
  WhenAnyState& operator=(const WhenAnyState&) = delete;
  ~WhenAnyState() {
    // Destroyed while waiting (a lightweight thread destroyed by stop): as DoMsg.
    if (finish_.valid() && !finish_.done()) {
      cw_.leave();
      for (std::size_t i = 0; i < sent_; ++i) {
        if (msgs_[i].parked_ && !msgs_[i].msg_->done()) abandon(*msgs_[i].msg_);
      }
    }
  }

  // Sends, in order, until one is known to be replied. true: nothing is left to wait for.
  bool start() noexcept {
    if (msgs_.empty()) return true;
    for (AnyMsg& a : msgs_) {
      Message& m = *a.msg_;
      m.set_abortable(true);
      ++sent_;
      int r = begin(*a.port_, m, kMsgSyncHint);
      if (r != kAsync) {
        finish_inline(m, r);
        claim(a);
        break;
      }
      a.waiter_.arm(this, static_cast<std::size_t>(&a - msgs_.data()));
      left_.fetch_add(1, std::memory_order_relaxed);  // before the park that lets a reply in
      if (!park(m, a.waiter_)) {
        left_.fetch_sub(1, std::memory_order_relaxed);  // replied before the park: not parked
        claim(a);
        break;
      }
      a.parked_ = true;
      parked_none_ = false;
      if (winner_.load(std::memory_order_acquire) != AnyResult::kNone) break;
    }
    // Done unless a message is still parked on. left_ is 1 (ours) exactly when none is.
    return left_.load(std::memory_order_acquire) == 1 &&
           winner_.load(std::memory_order_relaxed) != AnyResult::kNone;
  }

  // The part after the first reply, when start() left something to wait for: its frame is
  // when_any's one allocation.
  template <class P>
  std::coroutine_handle<> suspend(std::coroutine_handle<P> awaiting) noexcept {
    cancel_ = cancellation_of(awaiting);
    finish_ = finish();
    return finish_.when_done().await_suspend(awaiting);
  }

  AnyResult result() const noexcept {
    AnyResult r;
    r.sent = sent_;
    r.index = winner_.load(std::memory_order_acquire);
    if (r.index != AnyResult::kNone) r.result = msgs_[r.index].msg_->result();
    return r;
  }

  // A parked message was replied (on any thread).
  void on_reply(std::size_t i, Wake how) noexcept {
    std::size_t none = AnyResult::kNone;
    if (winner_.compare_exchange_strong(none, i, std::memory_order_acq_rel)) {
      if (phase_.exchange(kFired, std::memory_order_acq_rel) == kWaiting) co_.wake(how);
    }
    // Last: the coroutine has given up its own share, and waits for this one.
    if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) co_.wake(how);
  }

 private:
  enum : std::uint32_t { kRunning, kWaiting, kFired };

  // A message found replied by the sender itself: the winner if it is the first.
  void claim(AnyMsg& a) noexcept {
    if (parked_none_) {  // nothing parked: no reply can race this one (a plain store)
      winner_.store(static_cast<std::size_t>(&a - msgs_.data()), std::memory_order_relaxed);
      return;
    }
    std::size_t none = AnyResult::kNone;
    winner_.compare_exchange_strong(none, static_cast<std::size_t>(&a - msgs_.data()),
                                    std::memory_order_acq_rel);
  }

  // co_await: until the first reply (or a cancel).
  struct FirstReply {
    WhenAnyState& s;
    bool await_ready() const noexcept {
      return s.winner_.load(std::memory_order_acquire) != AnyResult::kNone;
    }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      s.co_.arm(h);
      std::uint32_t expected = kRunning;
      if (!s.phase_.compare_exchange_strong(expected, kWaiting, std::memory_order_acq_rel)) {
        return false;  // fired meanwhile
      }
      // Waiting: a winner's wake resumes this coroutine on this context, later.
      if (s.cancel_ != nullptr) s.cw_.enter(*s.cancel_, &on_cancel, &s);
      return true;
    }
    void await_resume() noexcept { s.cw_.leave(); }
  };
  // co_await: until every parked message has been replied.
  struct AllReplied {
    WhenAnyState& s;
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      s.co_.arm(h);
      return s.left_.fetch_sub(1, std::memory_order_acq_rel) != 1;  // our share
    }
    void await_resume() const noexcept {}
  };

  // The thread was cancelled while when_any waits for the first reply: stop waiting for it.
  static void on_cancel(void* arg) noexcept {
    auto* s = static_cast<WhenAnyState*>(arg);
    if (s->phase_.exchange(kFired, std::memory_order_acq_rel) == kWaiting) {
      s->co_.wake(Wake::kScheduled);
    }
  }

  void abort_rest() noexcept {
    std::size_t w = winner_.load(std::memory_order_acquire);
    for (std::size_t i = 0; i < sent_; ++i) {
      AnyMsg& a = msgs_[i];
      // A reply that comes now (inline) only counts down: our own share keeps the rest alive.
      if (i != w && a.parked_ && !a.aborted_ && !a.msg_->done()) {
        a.aborted_ = true;
        abort_msg(*a.msg_);
      }
    }
  }

  Task<void> finish() {
    if (cancel_ != nullptr && cancel_->requested()) {
      abort_rest();  // every message: none has won yet, or the winner is done
    } else {
      co_await FirstReply{*this};
    }
    abort_rest();
    co_await AllReplied{*this};
  }

  std::span<AnyMsg> msgs_;
  std::atomic<std::size_t> winner_{AnyResult::kNone};
  std::atomic<std::uint32_t> phase_{kRunning};
  std::atomic<std::size_t> left_{1};
  CoWaiter co_;
  std::size_t sent_ = 0;
  bool parked_none_ = true;  // no message parked on yet
  Cancellation* cancel_ = nullptr;
  CancelWait cw_;
  Task<void> finish_;
};

inline void AnyWaiter::wake_fn(Waiter* w, Wake how) noexcept {
  auto* self = static_cast<AnyWaiter*>(w);
  self->state_->on_reply(self->index_, how);
}

// The awaitable when_any returns. Not copyable or movable: replies find it where it is.
class [[nodiscard]] WhenAnyAwait {
 public:
  bool await_ready() noexcept { return state().start(); }
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
    return state().suspend(h);
  }
  AnyResult await_resume() const noexcept { return state_.result(); }

  WhenAnyAwait(const WhenAnyAwait&) = delete;
  WhenAnyAwait& operator=(const WhenAnyAwait&) = delete;

 protected:
  explicit WhenAnyAwait(std::span<AnyMsg> msgs) noexcept : state_(msgs) {}
  WhenAnyState& state() noexcept { return state_; }

 private:
  WhenAnyState state_;
};

template <std::size_t N>
class [[nodiscard]] WhenAnyOf final : public WhenAnyAwait {
 public:
  template <class... A>
  explicit WhenAnyOf(A&&... msgs) noexcept
      : WhenAnyAwait(std::span<AnyMsg>(msgs_)), msgs_{msgs...} {}

 private:
  std::array<AnyMsg, N> msgs_;
};

class [[nodiscard]] WhenAnySpan final : public WhenAnyAwait {
 public:
  explicit WhenAnySpan(std::span<AnyMsg> msgs) noexcept : WhenAnyAwait(msgs) {}
};

}  // namespace detail

template <class... A>
requires(std::same_as<std::remove_cvref_t<A>, AnyMsg>&&...)
    detail::WhenAnyOf<sizeof...(A)> when_any(A&&... msgs)
noexcept { return detail::WhenAnyOf<sizeof...(A)>(msgs...); }

inline detail::WhenAnySpan when_any(std::span<AnyMsg> msgs) noexcept {
  return detail::WhenAnySpan(msgs);
}

// ---- wait_port_until
// -----------------------------------------------------------------------------

template <class Lock>
class [[nodiscard]] WaitPortUntil {
 public:
  WaitPortUntil(BasicQueuePort<Lock>& port, absl::Time deadline) noexcept
      : port_(port), when_(deadline) {}
  WaitPortUntil(BasicQueuePort<Lock>& port, absl::Duration after) noexcept
      : port_(port), after_(after), relative_(true) {}
  WaitPortUntil(const WaitPortUntil&) = delete;
  WaitPortUntil& operator=(const WaitPortUntil&) = delete;
  ~WaitPortUntil() {
    // Destroyed while parked (a lightweight thread destroyed by stop): off the port and the core.
    if (got_ == parked()) {
      cw_.leave();
      port_.unpark_owner(waiter_);
      timer_.core->disarm(timer_);
    }
  }

  bool await_ready() {
    timer_.core = &detail::current_core_or_throw("wait_port_until");
    if constexpr (kTracksTaken<Lock>) {
      if (port_.owner_context() != timer_.core) {
        throw std::logic_error(
            "msgport: wait_port_until on a thread port from another core than its own (a "
            "lightweight thread that migrated serves its port once it is back)");
      }
    }
    got_ = port_.try_get();
    return got_ != nullptr;
  }

  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    cancel_ = cancellation_of(h);
    if (cancel_ != nullptr && cancel_->requested()) return false;  // got_ is nullptr
    absl::Time now = absl::Now();
    if (relative_) when_ = now + after_;
    if (when_ <= now) return false;
    waiter_.arm(h);
    got_ = parked();  // overwritten by the port when it hands a message over or closes
    if (!port_.park_owner(waiter_, &got_)) return false;
    timer_.self = this;
    timer_.when = when_;
    timer_.fire = [](CoreTimer* t) noexcept { static_cast<Timer*>(t)->self->expire(); };
    timer_.core->arm(timer_);
    // A thread port needs no registration: its thread's cancel closes it, which wakes its owner.
    if constexpr (!kTracksTaken<Lock>) {
      if (cancel_ != nullptr) cw_.enter(*cancel_, &on_cancel, this);
    }
    return true;
  }

  Message* await_resume() noexcept {
    timer_.core->disarm(timer_);  // a message came first; a no-op if the timer fired
    cw_.leave();
    return got_;
  }

 private:
  static Message* parked() noexcept { return reinterpret_cast<Message*>(alignof(Message)); }
  // The deadline (on the owner's core). Under the port's lock: either the owner is still parked
  // (no message was handed over, and none will be: the next one queues) and it is resumed with
  // nullptr here, or a message was handed over and the port's wake resumes it.
  void expire() noexcept {
    if (port_.unpark_owner(waiter_)) {
      got_ = nullptr;
      timer_.core->resume_here(waiter_.handle());
    }
  }
  static void on_cancel(void* arg) noexcept {
    auto* self = static_cast<WaitPortUntil*>(arg);
    if (self->port_.unpark_owner(self->waiter_)) {
      self->got_ = nullptr;
      self->timer_.core->disarm(self->timer_);
      self->waiter_.wake(Wake::kScheduled);
    }
  }

  struct Timer : CoreTimer {
    WaitPortUntil* self = nullptr;
    Core* core = nullptr;
  };
  BasicQueuePort<Lock>& port_;
  absl::Time when_;
  absl::Duration after_;
  bool relative_ = false;
  CancelWait cw_;
  CoWaiter waiter_;
  Message* got_ = nullptr;
  Cancellation* cancel_ = nullptr;
  Timer timer_;
};

template <class Lock>
WaitPortUntil<Lock> wait_port_until(BasicQueuePort<Lock>& port, absl::Time deadline) noexcept {
  return WaitPortUntil<Lock>(port, deadline);
}

// The deadline is `d` after the await finds nothing queued (the clock is read only then).
template <class Lock>
WaitPortUntil<Lock> wait_port_for(BasicQueuePort<Lock>& port, absl::Duration d) noexcept {
  return WaitPortUntil<Lock>(port, d);
}

// The same with std::chrono: a system_clock or steady_clock deadline, any duration
// (runtime/chrono.h).
template <class Lock, ChronoTimePoint T>
WaitPortUntil<Lock> wait_port_until(BasicQueuePort<Lock>& port, T deadline) noexcept {
  return wait_port_until(port, to_absl(deadline));
}
template <class Lock, class Rep, class Period>
WaitPortUntil<Lock> wait_port_for(BasicQueuePort<Lock>& port,
                                  std::chrono::duration<Rep, Period> d) noexcept {
  return wait_port_for(port, to_absl(d));
}

}  // namespace msgport
