#include <absl/strings/str_cat.h>
#include <msgport/ports/ops.h>
#include <msgport/runtime/core.h>
#include <msgport/runtime/thread_port.h>

#include <cerrno>
#include <ostream>

namespace msgport {

using detail::MsgAccess;

ThreadPort::ThreadPort(Core& owner) : BasicQueuePort<OwnedLock>(&owner) {
  route_ = owner.ports_.add(this);
}

// The owner sits in the base's first cache line, which senders on other cores read and the owner
// does not write: reading it costs a sender no cache-line transfer.
Core& ThreadPort::owner() const noexcept { return *static_cast<Core*>(bound_context()); }

// The thread ended (end() retired the handle on the owning core) or never ran, or its core has
// stopped: no entry can reach this port any more.
ThreadPort::~ThreadPort() {
  if (!ended_) owner().ports_.remove(route_);
}

bool ThreadPort::on_owner() const noexcept { return Core::current() == bound_context(); }

std::string ThreadPort::Counters::to_string() const {
  return absl::StrCat("begun_local=", begun_local, " begun_cross_core=", begun_cross_core, " ",
                      PortCounters::to_string());
}

std::ostream& operator<<(std::ostream& os, const ThreadPort::Counters& c) {
  return os << c.to_string();
}

namespace {
// Single-writer counter bump (the core's own counters): a plain load and store.
inline void bump(std::atomic<std::uint64_t>& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // single writer
}
}  // namespace

int ThreadPort::begin_here(Message& m, bool cross_core) {
  Core::AtomicCounters& core = owner().counters_;
  (cross_core ? begun_cross_core_ : begun_local_).bump();  // on the owning core
  bump(cross_core ? core.begun_cross_core : core.begun_local);
  // The base counts async, queued and refused (on this core: the port's one context).
  int r = BasicQueuePort<OwnedLock>::begin_msg(m);
  if (r == kAsync && (m.flags() & kMsgQueued)) bump(core.queued);
  return r;
}

int ThreadPort::begin_msg(Message& m) {
  // A new send: an abort naming an earlier one is stale from here on (runtime/core.h). A send on
  // the port's own core is aborted there directly, never by an entry: it only needs a number no
  // entry carries (0).
  if (on_owner()) {
    MsgAccess::send(m).store(0, std::memory_order_relaxed);
    return begin_here(m, /*cross_core=*/false);
  }
  MsgAccess::send(m).store(detail::next_send_number(), std::memory_order_relaxed);
  // A port whose core has stopped refuses at once. (A closed port on a running core refuses on
  // that core: reading its flag here would pull a cache line the owner writes.)
  if (owner().stopped()) {
    refused_elsewhere_.fetch_add(1, std::memory_order_relaxed);
    return -ECANCELED;
  }
  // Crossing to another core: the single-context shortcut must not apply to this send. A
  // forward (forward_msg) has set kForwarded already, with a read-modify-write, since the sender
  // may be parking on m meanwhile; without it this is the sender's own send, and the sender is
  // the one writer of the word until the agent has it (begin): a plain store is enough.
  std::atomic<std::uint32_t>& state = MsgAccess::state(m);
  if (std::uint32_t s = state.load(std::memory_order_relaxed); !(s & detail::kForwarded)) {
    state.store(s | detail::kForwarded, std::memory_order_relaxed);  // one writer: the sender
  }
  owner().deliver(CoreEntry(&m, CoreEntry::kSend, handle()));
  return kAsync;
}

void ThreadPort::put_reply(Message& m) noexcept {
  if (on_owner()) {
    if (ended_) {
      detail::complete(m);  // its thread is gone: the reply only marks it done
      return;
    }
    BasicQueuePort<OwnedLock>::put_reply(m);
  } else {
    owner().deliver(CoreEntry(&m, CoreEntry::kReply, handle()));
  }
}

void ThreadPort::abort(Message& m) noexcept {
  if (on_owner()) {
    if (remove_queued(m, false)) {
      counts().aborted.bump();  // on the owning core
      reply_msg(m, -ECANCELED);
    } else if (on_abort_ && taken_at(&m) != nullptr) {
      on_abort_(m);
    }
  } else {
    // Names this send of m: once m is replied (and maybe sent again) the entry is stale.
    owner().deliver(CoreEntry(&m, CoreEntry::kAbort, handle(), m.send()));
  }
}

void ThreadPort::abort_queued(const void* addr, std::uint32_t send) noexcept {
  // Queued here, or taken by the thread and not answered: in flight and alive, so its send
  // number may be read, and tells whether the abort is for this send.
  if (Message* m = queued_at(addr); m != nullptr && m->send() == send) {
    if (remove_queued(*m, false)) {
      counts().aborted.bump();  // on the owning core
      reply_msg(*m, -ECANCELED);
    }
  } else if (Message* t = on_abort_ ? taken_at(addr) : nullptr; t != nullptr && t->send() == send) {
    on_abort_(*t);
  }
}

void ThreadPort::end() noexcept {
  cancel_all();
  owner().ports_.remove(route_);
  ended_ = true;
}

bool ThreadPort::remove_queued(Message& m, bool reply) noexcept {
  // Another core cannot take a message out of this core's queue synchronously.
  if (!on_owner()) return false;
  return BasicQueuePort<OwnedLock>::remove_queued(m, reply);
}

bool ThreadPort::collect_reply(Message& m, Waiter& w) noexcept {
  if (on_owner()) {
    BasicQueuePort<OwnedLock>::remove_queued(m, true);
    return false;
  }
  // The owning core takes it off its queue, then wakes w (m stays the waiter's meanwhile).
  owner().deliver(
      CoreEntry(&m, CoreEntry::kCollect, handle(), reinterpret_cast<std::uintptr_t>(&w)));
  return true;
}

void ThreadPort::cancel_queued() noexcept {
  close();
  while (Message* m = try_get()) {
    if (m->done()) continue;    // a queued reply is the owner's: let it go
    counts().cancelled.bump();  // on the owning core
    reply_msg(*m, -ECANCELED);
  }
}

}  // namespace msgport
