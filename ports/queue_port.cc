#include <msgport/ports/ops.h>
#include <msgport/ports/queue_port.h>

#include <cerrno>
#include <mutex>
#include <ostream>
#include <type_traits>

namespace msgport {

using detail::MsgAccess;

std::string PortCounters::to_string() const {
  return "sync=" + std::to_string(sync) + " async=" + std::to_string(async) +
         " queued=" + std::to_string(queued) + " refused=" + std::to_string(refused) +
         " aborted=" + std::to_string(aborted) + " cancelled=" + std::to_string(cancelled) +
         " replies=" + std::to_string(replies);
}

std::ostream& operator<<(std::ostream& os, const PortCounters& c) { return os << c.to_string(); }

template <class Lock>
BasicQueuePort<Lock>::~BasicQueuePort() {
  cancel_all();
}

template <class Lock>
void BasicQueuePort<Lock>::cancel_all() noexcept {
  MsgQueue doomed;
  Waiter* owner = nullptr;
  {
    std::lock_guard lock(lock_);
    closed_.store(true, std::memory_order_relaxed);
    while (Message* m = queue_.pop()) {
      if (!m->done()) doomed.push(*m);  // a request never begun; a queued reply is let go
    }
    if (owner_ != nullptr) {
      *owner_slot_ = nullptr;
      owner = owner_;
      owner_ = nullptr;
    }
  }
  // Requests the owner took and never answered: it is gone, so they are answered here.
  while (Message* m = taken_.pop()) doomed.push(*m);
  if (std::size_t n = doomed.size(); n != 0) count(&detail::PortCounts::cancelled, n);
  while (Message* m = doomed.pop()) {
    MsgAccess::result(*m) = -ECANCELED;
    // Its reply cannot come back to a port that is going away: only mark it done.
    if (m->reply_port() == this) {
      detail::complete(*m);
    } else {
      reply_msg(*m, -ECANCELED);
    }
  }
  if (owner != nullptr) owner->wake(Wake::kScheduled);
}

template <class Lock>
Waiter* BasicQueuePort<Lock>::deliver_locked(Message& m) noexcept {
  if (owner_ == nullptr) {
    queue_.push(m);
    return nullptr;
  }
  // The owner is parked, so the queue is empty: handing m over keeps the order.
  *owner_slot_ = taking(&m);
  Waiter* w = owner_;
  owner_ = nullptr;
  return w;
}

template <class Lock>
int BasicQueuePort<Lock>::begin_msg(Message& m) {
  check_context();
  std::atomic<std::uint32_t>& state = MsgAccess::state(m);
  std::uint32_t s = state.load(std::memory_order_acquire);
  Waiter* owner;
  {
    std::lock_guard lock(lock_);
    if (closed_.load(std::memory_order_relaxed) ||
        ((MsgAccess::options(m) & kMsgAbortable) && (s & kMsgAbortRequested))) {
      counts_.refused.bump();
      return -ECANCELED;
    }
    if constexpr (kSingleContext<Lock>) {
      // Sent straight here by a sender on this port's context (a LocalPort has no other):
      // nothing off this context can reach it now.
      detail::hold_locally(m, s, Context::current());
    }
    counts_.async.bump();
    owner = deliver_locked(m);
    if (owner == nullptr) counts_.queued.bump();
  }
  if (owner != nullptr) owner->wake(Wake::kScheduled);
  return kAsync;
}

template <class Lock>
void BasicQueuePort<Lock>::put_reply(Message& m) noexcept {
  check_context();
  Waiter* owner = nullptr;
  Waiter* waiter = nullptr;
  {
    std::lock_guard lock(lock_);
    // Under the lock, so that a wait_msg which sees kMsgDone finds the reply already queued.
    std::uint32_t s =
        MsgAccess::state(m).fetch_or(kMsgDone | kMsgReplied, std::memory_order_acq_rel);
    MSGPORT_CHECK_RULE(!(s & kMsgDone), "reply_msg: a message is replied exactly once");
    counts_.replies.bump();
    if (s & detail::kParked) {
      waiter = MsgAccess::waiter(m);  // a wait_msg parked on this very message: no queueing
    } else {
      owner = deliver_locked(m);
    }
  }
  if (waiter != nullptr) waiter->wake(Wake::kDirect);
  if (owner != nullptr) owner->wake(Wake::kScheduled);
}

template <class Lock>
void BasicQueuePort<Lock>::abort(Message& m) noexcept {
  if (remove_queued(m, false)) {
    count(&detail::PortCounts::aborted);
    reply_msg(m, -ECANCELED);
  }
}

template <class Lock>
bool BasicQueuePort<Lock>::remove_queued(Message& m, bool reply) noexcept {
  check_context();
  std::lock_guard lock(lock_);
  // Only a message in *this* queue: its holder may have moved it elsewhere meanwhile.
  if (!queue_.contains(m) || m.done() != reply) return false;
  return queue_.remove(m);
}

template <class Lock>
Message* BasicQueuePort<Lock>::try_get() noexcept {
  check_context();
  std::lock_guard lock(lock_);
  return taking(queue_.pop());
}

template <class Lock>
void BasicQueuePort<Lock>::close() noexcept {
  Waiter* owner = nullptr;
  {
    std::lock_guard lock(lock_);
    closed_.store(true, std::memory_order_relaxed);
    if (owner_ != nullptr && queue_.empty()) {
      *owner_slot_ = nullptr;
      owner = owner_;
      owner_ = nullptr;
    }
  }
  if (owner != nullptr) owner->wake(Wake::kScheduled);
}

template <class Lock>
bool BasicQueuePort<Lock>::closed() const noexcept {
  return closed_.load(std::memory_order_relaxed);
}

template <class Lock>
std::size_t BasicQueuePort<Lock>::size() const noexcept {
  std::lock_guard lock(lock_);
  return queue_.size();
}

template <class Lock>
bool BasicQueuePort<Lock>::park_owner(Waiter& w, Message** slot) noexcept {
  check_context();
  std::lock_guard lock(lock_);
  MSGPORT_CHECK_RULE(owner_ == nullptr, "wait_port: a queue port has one owner waiting at a time");
  if (Message* m = queue_.pop()) {
    *slot = taking(m);
    return false;
  }
  if (closed_.load(std::memory_order_relaxed)) {
    *slot = nullptr;
    return false;
  }
  owner_ = &w;
  owner_slot_ = slot;
  return true;
}

template <class Lock>
void BasicQueuePort<Lock>::check_context() const noexcept {
  // A port bound to one context (a thread port) is used there only: its queue has no lock, and
  // its taken list belongs to that context. wait_port checks it in every build (and throws); the
  // runtime reaches the rest only on the port's core.
#ifndef NDEBUG
  MSGPORT_CHECK_RULE(
      !kTracksTaken<Lock> || Context::current() == context_,
      "a thread port is used by its owner on its own core only (a lightweight "
      "thread that migrated takes from or replies through its port once it is back)");
  if constexpr (kSingleContext<Lock>) {
    Context* now = Context::current();
    if (context_ == nullptr) context_ = now;
    MSGPORT_CHECK_RULE(now == context_,
                       "LocalPort: every user of a local port runs on one context");
  }
#endif
}

template class BasicQueuePort<SpinLock>;
template class BasicQueuePort<NullLock>;
template class BasicQueuePort<OwnedLock>;

Message* wait_port_blocking(QueuePort& port) {
  ThreadWaiter waiter;
  Message* got = nullptr;
  if (port.park_owner(waiter, &got)) waiter.wait();
  return got;
}

}  // namespace msgport
