#include "ports/ops.h"

namespace msgport {

using detail::MsgAccess;

void Port::put_reply(Message& m) noexcept { detail::complete(m); }

void Context::post_reply(Message&) noexcept {
  detail::broken_rule(
      "a message held by a single-context port (LocalPort) was replied from another thread, and "
      "that port's context cannot take the reply over (Context::post_reply)",
      __FILE__, __LINE__);
}

void Port::abort(Message&) noexcept {}

bool Port::remove_queued(Message&, bool) noexcept { return false; }

int wait_msg_blocking(Message& m) {
  ThreadWaiter waiter;
  if (detail::park(m, waiter)) {
    waiter.wait();
  } else {
    detail::collect(m);
  }
  return m.result();
}

void abort_msg(Message& m) noexcept {
  std::uint32_t s = MsgAccess::state(m).fetch_or(kMsgAbortRequested, std::memory_order_acq_rel);
  MSGPORT_CHECK_RULE(s & kMsgInFlight, "abort_msg: aborting a message nobody sent");
  if ((s & kMsgDone) || !(MsgAccess::options(m) & kMsgAbortable)) return;
  m.holder()->abort(m);
}

bool drop_msg(Message& m) noexcept {
  MSGPORT_CHECK_RULE(MsgAccess::options(m) & kMsgDropable,
                     "drop_msg: only a message sent with kMsgDropable can be dropped");
  if (!(MsgAccess::options(m) & kMsgDropable) || !m.in_flight()) return false;
  // Someone waits on it: taking it back would strand the waiter.
  if (MsgAccess::state(m).load(std::memory_order_acquire) & detail::kParked) return false;
  Port* holder = m.holder();
  if (!holder->remove_queued(m, false)) return false;
  // Never begun: it is the sender's again, as if it had never been sent.
  MsgAccess::state(m).store(0, std::memory_order_release);
  return true;
}

}  // namespace msgport
