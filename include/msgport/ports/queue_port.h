// msgport/ports/queue_port.h — the queue port: every message waits in line for the port's owner.
//
// The owner is one coroutine (or plain thread) that takes messages with wait_port(port). It is
// DragonFly's thread port: requests sent to it and replies that come back to it (when it is a
// message's reply port) share one queue, in order, priority messages first; the owner tells
// them apart by m->done() (a reply) or not (a request).
//
// Agent: queues the message and answers kAsync. If the owner is parked in wait_port the
// message is handed to it directly and the owner is woken (resumed at once when the sender runs
// on the owner's context, else scheduled on it). An abortable message whose abort was already
// requested is refused with -ECANCELED; so is every message after close().
//
// As a reply port: put_reply queues the reply (or hands it to a wait_msg parked on that very
// message). abort of a queued, not yet begun request takes it out of the queue and replies it
// -ECANCELED; drop_msg takes it out without a reply.
//
// Two flavours share this code (BasicQueuePort<Lock>):
//   QueuePort  any thread may send to it or reply to it; one owner takes from it. The queue is
//              guarded by a SpinLock held only for pointer updates.
//   LocalPort  every sender, replier and the owner run on one context (one thread): no lock, no
//              atomic on the queue. The runtime's same-core thread ports are of this kind;
//              messages from other cores reach them through the runtime, which puts them locally.
//              Debug builds check that callers are on one context.
// Nothing allocates.
//
// Destruction: queued requests are replied -ECANCELED, queued replies are let go, and a parked
// owner is woken with nullptr (cancel_all).
//
// Counters (ports/port_counters.h): counters() is a snapshot of what the port did — async,
// queued, refused, aborted, cancelled, replies — readable from any thread. Each is bumped under the
// port's lock (QueuePort) or on its one context (LocalPort): no read-modify-write on the way.
//
// Held locally: a LocalPort sent to on its own context marks the message kHeldLocally, held on
// that context; its sender may then park with a plain store (ports/ops.h), and a reply from any
// other thread is finished on that context (Context::post_reply).
#pragma once

#include <msgport/ports/context.h>
#include <msgport/ports/msg_queue.h>
#include <msgport/ports/port.h>
#include <msgport/ports/port_counters.h>
#include <msgport/ports/spin_lock.h>

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <type_traits>

namespace msgport {

// A lock that is no lock: for ports used from one context only.
struct NullLock {
  bool try_lock() noexcept { return true; }
  void lock() noexcept {}
  void unlock() noexcept {}
};

// NullLock for a port bound to its context for life that keeps a taken list: the runtime's
// thread port. Its owner takes and answers on that context only, checked in every build.
struct OwnedLock : NullLock {};

template <class Lock>
inline constexpr bool kSingleContext = std::is_base_of_v<NullLock, Lock>;
template <class Lock>
inline constexpr bool kTracksTaken = std::is_same_v<Lock, OwnedLock>;

template <class Lock>
class alignas(16) BasicQueuePort : public Port {
 public:
  BasicQueuePort() = default;
  ~BasicQueuePort() override;

  int begin_msg(Message& m) override;
  void put_reply(Message& m) noexcept override;
  void abort(Message& m) noexcept override;
  bool remove_queued(Message& m, bool reply) noexcept override;

  // Owner side: the next message if one is queued, else nullptr. Never waits.
  Message* try_get() noexcept;

  // Refuse new requests (-ECANCELED); messages already queued stay for the owner, and once they
  // are gone wait_port returns nullptr. Replies are still accepted.
  void close() noexcept;
  bool closed() const noexcept;

  std::size_t size() const noexcept;

  // The owner parks w (with slot for the message). Returns false when it need not wait:
  // *slot then holds the next message, or nullptr when the port is closed and empty.
  bool park_owner(Waiter& w, Message** slot) noexcept;

  // The owner's waiter w goes away unwoken (its coroutine is destroyed, its deadline passed, its
  // thread was cancelled): forget it. true: it was still parked, and the port will not wake it;
  // false: the port has already handed it a message (or nullptr) and woken it, or is about to.
  bool unpark_owner(Waiter& w) noexcept {
    std::lock_guard lock(lock_);
    if (owner_ != &w) return false;
    owner_ = nullptr;
    return true;
  }

  // Close, and answer everything: queued requests and every request the owner took and has not
  // answered (a port that tracks them) are replied -ECANCELED, queued replies are let go, a
  // parked owner is woken with nullptr. For an owner that is gone.
  void cancel_all() noexcept;

  // The context the port was bound to at construction (a thread port's core), or nullptr.
  Context* owner_context() const noexcept { return context_; }

  // Requests the owner has taken and not yet replied or forwarded (a port that tracks them).
  std::size_t taken() const noexcept { return taken_.size(); }

  // What the port did (ports/port_counters.h); from any thread.
  PortCounters counters() const noexcept { return counts_.read(); }

 protected:
  // A port that belongs to one context from the start and keeps a list of the requests its
  // owner has taken (MsgQueue::kTaken): its owner must take and answer them on that context.
  explicit BasicQueuePort(Context* owner) noexcept
      : context_(owner), taken_(MsgQueue::kTaken, owner) {}
  Context* bound_context() const noexcept { return context_; }
  // The queued message at address m, or nullptr: found without reading *m (MsgQueue::find).
  Message* queued_at(const void* m) noexcept {
    std::lock_guard lock(lock_);
    return queue_.find(m);
  }
  // The taken request at address m, or nullptr (on the owner's context; MsgQueue::find).
  Message* taken_at(const void* m) noexcept { return taken_.find(m); }
  // The counter words. Subclasses bump one with count() (under the port's lock), or directly
  // where they say which lock or context keeps that counter single-writer.
  detail::PortCounts& counts() noexcept { return counts_; }
  void count(detail::Count detail::PortCounts::*which, std::uint64_t n = 1) noexcept {
    std::lock_guard lock(lock_);
    (counts_.*which).bump(n);
  }
  // A word subclasses may set once, before the port is shared, and read from any thread: it
  // sits on the first cache line, which senders read and the owner does not write.
  std::uint64_t route_ = 0;

 private:
  // Queue m or hand it to the parked owner; returns the owner to wake (after unlocking).
  Waiter* deliver_locked(Message& m) noexcept;
  void check_context() const noexcept;
  // The owner takes m off the queue: a request joins the taken list, if the port keeps one.
  Message* taking(Message* m) noexcept {
    if constexpr (kTracksTaken<Lock>) {
      if (m != nullptr && !m->done()) taken_.push(*m);
    }
    return m;
  }

  // Read by senders on other threads (the vtable pointer above, and context_) on a line of its
  // own, apart from the queue state the owner writes for every message.
  // LocalPort: the one context it is used from (checked in debug builds; the member is always
  // there, so that code built with and without NDEBUG agrees on the layout). A port bound to a
  // context at construction (the runtime's ThreadPort) keeps its owner here.
  mutable Context* context_ = nullptr;

  // Apart: with the object 16-byte aligned (the class asks no more, so that plain operator new
  // serves it), the owner's fields below never share a line with the ones above.
  [[maybe_unused]] char line_gap_[40];
  mutable Lock lock_;
  MsgQueue queue_;
  Waiter* owner_ = nullptr;
  Message** owner_slot_ = nullptr;
  std::atomic<bool> closed_{false};  // written under lock_; read without it by closed()
  // Bumped under lock_ (for a single-context port: on its context), except `sync`, which the
  // base never bumps (SerializedPort does, under its serializer). Next to the queue state the
  // same messages write: no other cache line is touched for them.
  detail::PortCounts counts_;
  MsgQueue taken_{MsgQueue::kTaken};  // the owner's; touched on its context only
};

extern template class BasicQueuePort<SpinLock>;
extern template class BasicQueuePort<NullLock>;
extern template class BasicQueuePort<OwnedLock>;

class QueuePort : public BasicQueuePort<SpinLock> {};
class LocalPort : public BasicQueuePort<NullLock> {};

// The awaitable of wait_port: the next message on the port, or nullptr once it is closed and
// drained. Does not suspend when a message is already queued.
// A coroutine destroyed while parked here (a cancelled thread's frame) takes itself off the port,
// so the port never wakes a waiter that is gone.
// Cancellation (in a Task under one: JoinHandle::cancel()): once it is requested wait_port
// returns nullptr instead of parking (what is already queued is still returned; a cancelled
// lightweight thread's own port is emptied and closed by the cancel, so there it is nullptr at
// once); an owner parked here when the cancel arrives is resumed with nullptr (on a thread port,
// by the cancel closing its thread's own port: another thread waiting on it is not interrupted).
template <class Lock>
class [[nodiscard]] WaitPort {
 public:
  explicit WaitPort(BasicQueuePort<Lock>& port) noexcept : port_(port) {}
  WaitPort(const WaitPort&) = delete;
  WaitPort& operator=(const WaitPort&) = delete;
  ~WaitPort() {
    // Still parked: the port never wrote the slot, so it still names this waiter (and is alive:
    // a port going away writes the slot of the owner it wakes).
    if (got_ == parked()) {
      cw_.leave();
      port_.unpark_owner(waiter_);
    }
  }

  // A thread port is waited on on its own core only: elsewhere this throws std::logic_error (a
  // lightweight thread that migrated goes home first).
  bool await_ready() {
    if constexpr (kTracksTaken<Lock>) {
      if (port_.owner_context() != Context::current()) {
        throw std::logic_error(
            "msgport: wait_port on a thread port from another core than its own (a lightweight "
            "thread that migrated serves its port once it is back: co_await migrate_to(home))");
      }
    }
    got_ = port_.try_get();
    return got_ != nullptr;
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    Cancellation* c = cancellation_of(h);
    if (c != nullptr && c->requested()) return false;  // got_ is nullptr
    waiter_.arm(h);
    got_ = parked();  // overwritten by the port when it hands a message over or closes
    if (!port_.park_owner(waiter_, &got_)) return false;
    // A thread port needs no registration: its thread's cancel closes it, which wakes its owner.
    if constexpr (!kTracksTaken<Lock>) {
      if (c != nullptr) cw_.enter(*c, &on_cancel, this, waiter_.home());
    }
    return true;
  }
  Message* await_resume() noexcept {
    cw_.leave();
    return got_;
  }

 private:
  static Message* parked() noexcept { return reinterpret_cast<Message*>(alignof(Message)); }
  // On the owner's context: take the waiter off the port, unless the port already woke it.
  static void on_cancel(void* arg) noexcept {
    auto* self = static_cast<WaitPort*>(arg);
    if (self->port_.unpark_owner(self->waiter_)) {
      self->got_ = nullptr;
      self->waiter_.wake(Wake::kScheduled);
    }
  }
  BasicQueuePort<Lock>& port_;
  CoWaiter waiter_;
  Message* got_ = nullptr;
  CancelWait cw_;
};

template <class Lock>
WaitPort<Lock> wait_port(BasicQueuePort<Lock>& port) noexcept {
  return WaitPort<Lock>(port);
}

// Plain-thread wait_port: blocks without spinning.
Message* wait_port_blocking(QueuePort& port);

}  // namespace msgport
