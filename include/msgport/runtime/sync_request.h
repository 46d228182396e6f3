// msgport/runtime/sync_request.h — the awaitable that Mutex, Semaphore and Channel share: a
// request message that lives in the awaiter (so in the awaiting coroutine's frame), begun at the
// primitive's port when awaited, and parked on until the reply.
//
// await_ready sends the request (detail::begin, as do_msg does): an agent that grants at once (a
// free mutex, a permit, a buffered value) completes the await inline — no suspension, no queue.
// Otherwise the agent queued the request and the coroutine parks on it; the grant is the reply,
// which resumes the coroutine on its own core (directly when the granter runs there, within the
// core's budget of direct resumptions; else through the core's inbox).
//
// With a deadline (kDeadline; on a core only, elsewhere std::logic_error): a timer on the
// awaiting coroutine's core aborts the request when the deadline passes (abort_msg, from that
// core, as do_msg_until does). The primitive replies an aborted request -ECANCELED if it still
// waits in its queue — reported here as -ETIMEDOUT — and never grants it afterwards; a request
// already granted keeps its grant (its result is 0). Either way the reply comes exactly once.
//
// A coroutine destroyed while parked here (a thread cancelled by stop) takes its request out of
// the primitive's queue (detail::abandon -> remove_queued), so it is never granted afterwards,
// and disarms its timer. Once stop has sealed its core (Context::finished), the primitives no
// longer grant its request (can_take_grant): a grant made then (by another frame's destruction
// during stop(kCancel), say) would never be claimed, and the primitive may be gone by the time
// this frame is. One granted before its core stopped but never resumed hands the grant back when
// destroyed: P::unclaimed_grant(m) (a mutex unlocks, a semaphore takes its permits back).
//
// Nothing here allocates.
#pragma once

#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/spin_lock.h>
#include <msgport/runtime/core.h>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <initializer_list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

namespace msgport::detail {

// The blocking forms (lock_blocking, acquire_blocking, send_blocking, recv_blocking) are for plain
// threads: on a core they would block the core, and with it maybe the one thread that would let
// them go. There they throw std::logic_error naming `what`, as JoinHandle::join() does.
inline void refuse_blocking_on_a_core(const char* what) {
  if (Core::current() != nullptr) {
    throw std::logic_error(std::string("msgport: ") + what +
                           " on a core would block the core; co_await the coroutine form");
  }
}

// Can the coroutine parked on request m (queued at a primitive: under the primitive's lock) still
// run to take a grant? Not once its core has finished (the runtime's stop sealed it): a grant
// would never be claimed, and given back only when its frame is destroyed — maybe after the
// primitive, which may live in another frame the stop destroys. The primitives refuse such a
// request (-ECANCELED) instead of granting it. A request nobody has parked on yet is sent from a
// context that runs: it can.
inline bool can_take_grant(Message& m) noexcept {
  if (!(MsgAccess::state(m).load(std::memory_order_acquire) & kParked)) return true;
  Context* home = MsgAccess::waiter(m)->home();
  return home == nullptr || !home->finished();
}

// Replies -ECANCELED every request in `gone` (out of the primitive's queue, after its lock).
inline void refuse_all(MsgQueue& gone) noexcept {
  while (Message* m = gone.pop()) reply_msg(*m, -ECANCELED);
}

// A primitive's destructor: takes every request still waiting in `queues` (under `guard`).
// Those whose core has finished (stop(kCancel) destroyed the primitive's frame before theirs: no
// harm done) are refused -ECANCELED; one that could still run is a broken rule, `why` says so.
inline void end_waiters(SpinLock& guard, std::initializer_list<MsgQueue*> queues,
                        const char* why) noexcept {
  MsgQueue gone;
  bool live = false;
  {
    std::lock_guard lock(guard);
    for (MsgQueue* q : queues) {
      while (Message* m = q->pop()) {
        live = live || can_take_grant(*m);
        gone.push(*m);
      }
    }
  }
  if (live) broken_rule(why, __FILE__, __LINE__);
  refuse_all(gone);
}

struct NoDeadline {};

template <class P, class M, bool kDeadline = false>
class SyncRequest {
 public:
  template <class... A>
  explicit SyncRequest(P& port, A&&... args) : port_(port), msg_(std::forward<A>(args)...) {}
  SyncRequest(const SyncRequest&) = delete;
  SyncRequest& operator=(const SyncRequest&) = delete;
  ~SyncRequest() {
    if (parked_) [[unlikely]] {
      if constexpr (kDeadline) disarm();
      if (msg_.done()) {
        // Granted, but the coroutine never ran again to take it (its core had stopped): the
        // grant goes back (a mutex is unlocked, permits are released).
        if (msg_.result() >= 0) port_.unclaimed_grant(msg_);
      } else {
        abandon(msg_);
      }
    }
  }

  void set_deadline(absl::Time when) noexcept requires kDeadline { timer_.when = when; }

  bool await_ready() {
    if constexpr (kDeadline) {
      timer_.core = &current_core_or_throw("a wait with a deadline");
      timer_.msg = &msg_;
      timer_.fire = &Deadline::fire_fn;
      msg_.set_abortable(true);
    }
    int r = begin(port_, msg_, kMsgSyncHint);
    if (r != kAsync) {
      finish_inline(msg_, r);
      return true;
    }
    if constexpr (kDeadline) {
      if (timer_.when <= absl::Now()) {
        Deadline::fire_fn(&timer_);  // aborts it now: usually replied -ECANCELED at once
        return msg_.done();
      }
    }
    return false;
  }

  bool await_suspend(std::coroutine_handle<> h) noexcept {
    waiter_.arm(h);
    if constexpr (kDeadline) {
      if (!timer_.expired) timer_.core->arm(timer_);
    }
    // Marked before parking: once park() succeeds the reply may resume (and, on a plain thread,
    // finish) the coroutine at once, and this awaiter must not be written after that.
    parked_ = true;
    if (park(msg_, waiter_)) return true;
    parked_ = false;
    if constexpr (kDeadline) disarm();
    return false;
  }

 protected:
  // The request's result, for the awaiter's await_resume: >= 0 granted, < 0 a -errno
  // (-ETIMEDOUT when the deadline aborted it).
  int finish() noexcept {
    parked_ = false;
    int r = msg_.result();
    if constexpr (kDeadline) {
      disarm();
      if (timer_.expired && r == -ECANCELED) {
        r = -ETIMEDOUT;
        MsgAccess::result(msg_) = r;
      }
    }
    return r;
  }
  M& msg() noexcept { return msg_; }
  P& port() noexcept { return port_; }

 private:
  struct Deadline : CoreTimer {
    Core* core = nullptr;
    Message* msg = nullptr;
    bool expired = false;  // the deadline aborted the request (on its core only)
    static void fire_fn(CoreTimer* t) noexcept {
      auto* self = static_cast<Deadline*>(t);
      // Not when the grant came first, nor when the sender aborted it itself (-ECANCELED stays).
      if (self->msg->done() || self->msg->abort_requested()) return;
      self->expired = true;
      abort_msg(*self->msg);
    }
  };
  void disarm() noexcept {
    if (timer_.heap_index != static_cast<std::size_t>(-1)) timer_.core->disarm(timer_);
  }

  P& port_;
  M msg_;
  CoWaiter waiter_;
  bool parked_ = false;
  [[no_unique_address]] std::conditional_t<kDeadline, Deadline, NoDeadline> timer_;
};

}  // namespace msgport::detail
