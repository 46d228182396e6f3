#include "runtime/thread_port.h"

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "ports/ops.h"
#include "runtime/core.h"

namespace msgport {

using detail::MsgAccess;

ThreadPort::ThreadPort(Core& owner) : BasicQueuePort<NullLock>(&owner) {}

// The owner sits in the base's first cache line, which senders on other cores read and the owner
// does not write: reading it costs a sender no cache-line transfer.
Core& ThreadPort::owner() const noexcept { return *static_cast<Core*>(bound_context()); }

ThreadPort::~ThreadPort() = default;

bool ThreadPort::on_owner() const noexcept { return Core::current() == bound_context(); }

std::string ThreadPort::Counters::to_string() const {
  return absl::StrCat("begun_local=", begun_local, " begun_cross_core=", begun_cross_core,
                      " queued=", queued, " refused=", refused);
}

int ThreadPort::begin_here(Message& m, bool cross_core) {
  Core::AtomicCounters& core = owner().counters_;
  bump(cross_core ? begun_cross_core_ : begun_local_);
  bump(cross_core ? core.begun_cross_core : core.begun_local);
  int r = BasicQueuePort<NullLock>::begin_msg(m);
  if (r == kAsync) {
    if (m.flags() & kMsgQueued) {
      bump(queued_);
      bump(core.queued);
    }
  } else if (r == -ECANCELED) {
    refused_.fetch_add(1, std::memory_order_relaxed);
  }
  return r;
}

int ThreadPort::begin_msg(Message& m) {
  if (on_owner()) return begin_here(m, /*cross_core=*/false);
  // A port whose core has stopped refuses at once. (A closed port on a running core refuses on
  // that core: reading its flag here would pull a cache line the owner writes.)
  if (owner().stopped()) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    return -ECANCELED;
  }
  // Crossing to another core: the single-context shortcut must not apply to this send. Only the
  // sender's thread holds the message here, so a plain store is enough.
  auto& state = MsgAccess::state(m);
  state.store(state.load(std::memory_order_relaxed) | detail::kForwarded,
              std::memory_order_relaxed);
  owner().deliver(CoreEntry{&m, this, CoreEntry::kSend});
  return kAsync;
}

void ThreadPort::put_reply(Message& m) noexcept {
  if (on_owner()) {
    BasicQueuePort<NullLock>::put_reply(m);
  } else {
    owner().deliver(CoreEntry{&m, this, CoreEntry::kReply});
  }
}

void ThreadPort::abort(Message& m) noexcept {
  if (on_owner()) {
    BasicQueuePort<NullLock>::abort(m);
  } else {
    owner().deliver(CoreEntry{&m, this, CoreEntry::kAbort});
  }
}

bool ThreadPort::remove_queued(Message& m, bool reply) noexcept {
  // Another core cannot take a message out of this core's queue synchronously.
  if (!on_owner()) return false;
  return BasicQueuePort<NullLock>::remove_queued(m, reply);
}

void ThreadPort::cancel_queued() noexcept {
  close();
  while (Message* m = try_get()) {
    if (!m->done()) reply_msg(*m, -ECANCELED);  // a queued reply is the owner's: let it go
  }
}

}  // namespace msgport
