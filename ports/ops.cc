#include <msgport/ports/ops.h>

#include <cstdio>

namespace msgport {

using detail::MsgAccess;

void Port::put_reply(Message& m) noexcept { detail::complete(m); }

void detail::finish_posted_reply(Message& m, bool context_stopped) noexcept {
  if (!context_stopped) {
    route_reply(m);
    return;
  }
  MsgQueue::leave_taken(m);
  MsgAccess::state(m).fetch_and(~kHeldLocally, std::memory_order_acq_rel);
  deliver_reply(m);
}

std::uint32_t detail::next_send_number_block() noexcept {
  static std::atomic<std::uint32_t> blocks{0};
  return blocks.fetch_add(1, std::memory_order_relaxed);
}

void Context::post_reply(Message&) noexcept {
  detail::broken_rule(
      "a message held by a single-context port (LocalPort) was replied from another thread, and "
      "that port's context cannot take the reply over (Context::post_reply)",
      __FILE__, __LINE__);
}

void Port::abort(Message&) noexcept {}

bool Port::remove_queued(Message&, bool) noexcept { return false; }

void detail::abandon(Message& m) noexcept {
  if (m.done()) return;  // replied while its waiter could no longer run: nothing dangles
  Port* holder = m.holder();
  if (holder != nullptr && holder->remove_queued(m, false)) {
    // Taken back before any agent began it: as if never sent. A plain store: out of every
    // queue, the message is nobody else's.
    MsgAccess::state(m).store(0, std::memory_order_release);
    return;
  }
  std::fprintf(stderr,
               "msgport: a coroutine parked on a message was destroyed while port %p still holds "
               "the message; that port must not reply it (its memory is gone)\n",
               static_cast<void*>(holder));
  std::fflush(stderr);
}

int wait_msg_blocking(Message& m) {
  ThreadWaiter waiter;
  if (detail::park(m, waiter) || detail::collect(m, waiter)) waiter.wait();
  return m.result();
}

bool Port::collect_reply(Message& m, Waiter&) noexcept {
  remove_queued(m, true);
  return false;
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
  // Never begun: it is the sender's again, as if it had never been sent. A plain store: out of
  // the holder's queue (taken under its lock), nobody else can reach the message.
  MsgAccess::state(m).store(0, std::memory_order_release);
  return true;
}

}  // namespace msgport
