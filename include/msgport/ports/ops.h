// msgport/ports/ops.h — the message API: do_msg, send_msg, wait_msg, check_msg, forward_msg,
// reply_msg, abort_msg, drop_msg, and blocking forms for plain threads.
//
// Sender side
//   co_await do_msg(port, m)  Synchronous from the caller's view. Runs the agent when called; if it
//                             acted synchronously the await completes inline — no suspension, no
//                             atomic, no queue. If it answered kAsync the coroutine parks on the
//                             message and the reply resumes it (directly when the replier runs on
//                             the coroutine's context). Returns the result.
//   send_msg(port, m)         Asynchronous from the caller's view. If the agent acted at once,
//                             send_msg replies the message itself, so the reply always arrives the
//                             same way: at m.reply_port() (or, with none, only marking m done).
//   co_await wait_msg(m)      Waits for one sent message to complete (Exec's WaitIO). If the reply
//                             was queued on a reply port, it is taken off that queue.
//   check_msg(m)              Has m completed? Never waits (Exec's CheckIO).
//   abort_msg(m)              Asks m's holder to stop. m is still replied exactly once: -ECANCELED
//                             if the holder cancelled it, its own result if it finished first.
//                             Only kMsgAbortable messages reach the holder's abort hook; for any
//                             other, the request is only recorded (m.abort_requested()).
//   drop_msg(m)               Takes back a kMsgDropable message that is queued and not yet begun
//                             and that nobody waits on. true: m is the sender's again and will
//                             never be replied. false: too late, the reply will come.
//                             abort_msg and drop_msg are the sender's: call them on the sender's
//                             context (its thread), where the message cannot be replied, reused
//                             or freed while they run; and keep the holding port alive meanwhile.
//   do_msg_blocking(port, m), wait_msg_blocking(m)
//                             The same for plain threads (main, tests, foreign threads): they
//                             block without spinning. Never call them on a context's thread while
//                             the reply depends on that thread.
//
// Agent side
//   reply_msg(m, result)      Exactly once per message taken with kAsync. After it, the agent
//                             must not touch m: it belongs to the sender again.
//   forward_msg(port, m)      Passes a message the agent holds to another port, without replying.
//                             If that port's agent acts at once, forward_msg replies with its
//                             result.
//
// The reply-vs-park race: a reply may come from another thread while the sender is still on its
// way to parking. One atomic word settles it (detail::park / detail::complete): the sender's
// compare-exchange sets kParked only if kMsgDone is not yet set; the replier's fetch_or sets
// kMsgDone and sees whether kParked was. Exactly one of them continues the sender.
//
// Nothing here allocates. Contract violations are caught in debug builds (ports/check.h).
#pragma once

#include <msgport/ports/check.h>
#include <msgport/ports/context.h>
#include <msgport/ports/message.h>
#include <msgport/ports/msg_queue.h>
#include <msgport/ports/port.h>
#include <msgport/ports/thread_waiter.h>

#include <atomic>
#include <cerrno>
#include <concepts>
#include <coroutine>
#include <cstdint>

namespace msgport {

// Any port type: Port itself (type-erased) or a concrete class derived from it.
template <class P>
concept PortType = std::derived_from<P, Port>;

namespace detail {

// The state bit a parked waiter sets; private to the sender/replier handshake.
inline constexpr std::uint32_t kParked = 1u << 16;
// Set by a single-context port (LocalPort) when a sender on its own context begins the message
// directly (not forwarded): until the message leaves that port, no other thread can reach it.
inline constexpr std::uint32_t kHeldLocally = 1u << 17;
// Set by forward_msg: the message may have come from, or gone to, another context. It disables
// the kHeldLocally shortcut for the rest of this send. Every send starts with a fresh state.
inline constexpr std::uint32_t kForwarded = 1u << 18;

// The ops' window into Message's private header.
struct MsgAccess {
  static std::atomic<std::uint32_t>& state(Message& m) noexcept { return m.state_; }
  static std::uint16_t& options(Message& m) noexcept { return m.options_; }
  static int& result(Message& m) noexcept { return m.result_; }
  static Waiter*& waiter(Message& m) noexcept { return m.waiter_; }
  static std::atomic<Port*>& holder(Message& m) noexcept { return m.holder_; }
  static Port* reply_port(const Message& m) noexcept { return m.reply_port_; }
  static Context*& held_on(Message& m) noexcept { return m.held_on_; }
  static std::atomic<std::uint32_t>& send(Message& m) noexcept { return m.send_; }
};

// A number no other send in flight has (Message::send()). Each thread takes numbers from a block
// of its own, and a new block from one shared counter once in a million sends; the numbers wrap
// after 2^32, far longer than any request naming a send stays on its way.
std::uint32_t next_send_number_block() noexcept;
inline std::uint32_t next_send_number() noexcept {
  constexpr std::uint32_t kBlock = std::uint32_t{1} << 20;
  thread_local std::uint32_t next = 0;
  if (next % kBlock == 0) next = next_send_number_block() * kBlock + 1;  // never 0
  return next++;
}

// The sender hands m to port's agent. Returns what the agent answered.
template <PortType P>
inline int begin(P& port, Message& m, std::uint32_t hint) {
  MSGPORT_CHECK_RULE(!m.in_flight(), "a message still in flight cannot be sent again");
  MSGPORT_CHECK_RULE(!(m.flags() & kMsgQueued),
                     "a message queued on a reply port must be collected before it is sent again");
  MsgAccess::holder(m).store(&port, std::memory_order_relaxed);
  // A plain store: the message is the sender's until the agent runs, nobody else writes it now.
  MsgAccess::state(m).store(kMsgInFlight | hint, std::memory_order_relaxed);
  try {
    return port.begin_msg(m);
  } catch (...) {
    // An agent that throws did not take the message: still only the sender's (a plain store).
    MsgAccess::state(m).store(0, std::memory_order_relaxed);
    throw;
  }
}

// The agent acted at once: the sender has the message back. Nobody else ever saw it.
inline int finish_inline(Message& m, int result) noexcept {
  MsgAccess::result(m) = result;
  // A plain store: an agent that acted at once never let the message out of the sender's hands.
  MsgAccess::state(m).store(kMsgSyncHint | kMsgInFlight | kMsgDone, std::memory_order_relaxed);
  return result;
}

// The same check for complete() called directly (a port's put_reply, a stopping port).
inline bool complete_elsewhere(Message& m) noexcept {
  std::uint32_t s = MsgAccess::state(m).load(std::memory_order_acquire);
  if ((s & (kHeldLocally | kParked)) != kHeldLocally) return false;
  Context* home = MsgAccess::held_on(m);
  if (home == Context::current()) return false;
  home->post_reply(m);
  return true;
}

// A single-context agent (a LocalPort, a core's device port) taking m from a sender on its own
// context `here`: marks m held there, so that the sender parks, and the reply completes, with
// plain stores (park, complete_from). Only the sender's thread touches the state word at this
// point, so a plain store marks it. A message already held locally elsewhere, or marked
// forwarded, was forwarded here: it keeps its mark. A plain thread has no context to hold it on.
inline void hold_locally(Message& m, std::uint32_t s, Context* here) noexcept {
  if (!(s & (kForwarded | kHeldLocally)) && here != nullptr) {
    MsgAccess::held_on(m) = here;
    MsgAccess::state(m).store(s | kHeldLocally, std::memory_order_relaxed);
  }
}

// Completes m (result already stored) and continues a waiter parked on it, if any.
//
// Fast path: if the sender is already parked and its home is the replier's own context, nothing
// on another thread can touch the state (the sender is suspended here; abort_msg is called from
// the sender's context), so a plain store completes it.
// Otherwise one fetch_or settles the race with park(). Release: the result and payload writes
// happen-before the sender sees kMsgDone. Acquire: if kParked was set, the waiter record it
// published is visible.
// complete() with the state word already loaded (acquire) by the caller.
inline void complete_from(Message& m, std::uint32_t s) noexcept {
  std::atomic<std::uint32_t>& state = MsgAccess::state(m);
  if (s & kParked) {
    Waiter* w = MsgAccess::waiter(m);
    Context* here = Context::current();
    if (here != nullptr && w->home() == here) {
      MSGPORT_CHECK_RULE(!(s & kMsgDone), "reply_msg: a message is replied exactly once");
      // A plain store: the sender is parked on this very context, so nobody else writes the
      // word now (abort_msg runs on the sender's context, the holder is us).
      state.store(s | kMsgDone | kMsgReplied, std::memory_order_relaxed);
      w->wake();
      return;
    }
  } else if (complete_elsewhere(m)) [[unlikely]] {
    return;
  }
  s = state.fetch_or(kMsgDone | kMsgReplied, std::memory_order_acq_rel);
  MSGPORT_CHECK_RULE(s & kMsgInFlight, "reply_msg: replying a message nobody sent");
  MSGPORT_CHECK_RULE(!(s & kMsgDone), "reply_msg: a message is replied exactly once");
  if (s & kParked) MsgAccess::waiter(m)->wake();
}

inline void complete(Message& m) noexcept {
  complete_from(m, MsgAccess::state(m).load(std::memory_order_acquire));
}

// Parks w on m unless m is already done. true: parked, w will be woken exactly once.
// false: m completed first; the caller continues and must not wait.
// While a single-context port holds m (kHeldLocally) and the sender parks on that same context
// (held_on), no other thread writes the state word: a reply from any other thread is handed to
// that context (reply_msg), so a plain store parks. A sender that migrated since it sent parks
// with the compare-exchange like everyone else.
inline bool park(Message& m, Waiter& w) noexcept {
  std::atomic<std::uint32_t>& state = MsgAccess::state(m);
  std::uint32_t s = state.load(std::memory_order_acquire);
  MSGPORT_CHECK_RULE(s & kMsgInFlight, "wait_msg: waiting on a message nobody sent");
  MSGPORT_CHECK_RULE(!(s & kParked), "one waiter per message: it is already being waited on");
  if (s & kMsgDone) return false;
  MsgAccess::waiter(m) = &w;
  if ((s & (kHeldLocally | kForwarded)) == kHeldLocally &&
      MsgAccess::held_on(m) == Context::current()) {
    // A plain store (release, to publish waiter(m) to a replier that reads kParked elsewhere).
    state.store(s | kParked, std::memory_order_release);
    return true;
  }
  while (!(s & kMsgDone)) {
    // Release publishes waiter(m) to the replier; on failure s is reloaded (acquire).
    if (state.compare_exchange_weak(s, s | kParked, std::memory_order_release,
                                    std::memory_order_acquire)) {
      return true;
    }
  }
  return false;
}

// The coroutine parked on m is being destroyed with m still in flight (a cancelled thread).
void abandon(Message& m) noexcept;

// wait_msg found m done: if its reply was queued on its reply port, take it off that queue
// (Port::collect_reply). true: that happens elsewhere (a thread port on another core), and w is
// woken once it has.
inline bool replies_to_a_port(Message& m) noexcept {
  return MsgAccess::reply_port(m) != nullptr &&
         !(MsgAccess::state(m).load(std::memory_order_relaxed) & kMsgSyncHint);
}
inline bool collect(Message& m, Waiter& w) noexcept {
  // Asked of the reply port even when m looks unqueued: the port may be between marking m done
  // and queueing it (under its lock, or on its own core), and only it can tell.
  return replies_to_a_port(m) && MsgAccess::reply_port(m)->collect_reply(m, w);
}

}  // namespace detail

// ---- Sender side -------------------------------------------------------------------------------

void abort_msg(Message& m) noexcept;

namespace detail {
// An await's park under a cancellation (DoMsg, WaitMsg). Cancelled already: m is aborted now (it
// may be replied at once: then park() declines), and there is no need to be told again. Parked
// otherwise: only a reply from another thread can resume it, later, on this context, so the
// registration (on_cancel(self) aborts m) is in place before it runs again.
inline bool park_watched(Message& m, CoWaiter& w, Cancellation& c, CancelWait& cw,
                         Cancellation::Interrupt on_cancel, void* self) noexcept {
  bool aborted = c.requested();
  if (aborted) abort_msg(m);
  bool parked = park(m, w);
  if (parked && !aborted) cw.enter(c, on_cancel, self, w.home());
  return parked;
}
}  // namespace detail

// The awaitable of do_msg. do_msg(port, m) begins the message when it is called (the agent runs
// then); awaiting the result does not suspend when the agent acted at once, and parks the
// coroutine on m otherwise.
//
// A coroutine destroyed while parked here (a cancelled thread's frame) takes its message back if
// it is still queued at its holder, and otherwise says on stderr that the holder still has it
// (detail::abandon): that holder must not reply into the freed frame.
//
// Cancellation (in a Task under one: a lightweight thread's JoinHandle::cancel()): a message that
// is not done when the await would park is aborted (abort_msg) before parking, once cancellation
// has been requested; one already parked on is aborted when the cancel arrives. The await still
// returns its reply: -ECANCELED if the holder cancelled it, its own result if it finished first
// (or if it is not kMsgAbortable and the holder ignores the request). do_msg begins the message
// when called, before the await can tell which thread awaits it: a cancelled thread's do_msg is
// begun, and its await does not park quietly.
class [[nodiscard]] DoMsg {
 public:
  explicit DoMsg(Message& m) noexcept : m_(m) {}
  DoMsg(const DoMsg&) = delete;
  DoMsg& operator=(const DoMsg&) = delete;
  ~DoMsg() {
    if (parked_) [[unlikely]] {
      cw_.leave();
      detail::abandon(m_);
    }
  }

  bool await_ready() const noexcept { return m_.done(); }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    waiter_.arm(h);
    if (Cancellation* c = cancellation_of(h)) {
      parked_ = detail::park_watched(m_, waiter_, *c, cw_, &on_cancel, this);
    } else {
      parked_ = detail::park(m_, waiter_);
    }
    return parked_;
  }
  int await_resume() noexcept {
    parked_ = false;
    cw_.leave();
    return m_.result();
  }

 private:
  static void on_cancel(void* self) noexcept { abort_msg(static_cast<DoMsg*>(self)->m_); }

  Message& m_;
  CoWaiter waiter_;
  bool parked_ = false;
  CancelWait cw_;
};

template <PortType P>
DoMsg do_msg(P& port, Message& m) {
  int r = detail::begin(port, m, kMsgSyncHint);
  if (r != kAsync) detail::finish_inline(m, r);
  return DoMsg(m);
}

// Plain-thread do_msg: runs the agent; if it took the message, blocks until the reply.
template <PortType P>
int do_msg_blocking(P& port, Message& m) {
  int r = detail::begin(port, m, kMsgSyncHint);
  if (r != kAsync) return detail::finish_inline(m, r);
  ThreadWaiter waiter;
  if (detail::park(m, waiter)) waiter.wait();
  return m.result();
}

void reply_msg(Message& m, int result) noexcept;

template <PortType P>
void send_msg(P& port, Message& m) {
  int r = detail::begin(port, m, 0);
  if (r != kAsync) reply_msg(m, r);
}

// The awaitable of wait_msg.
// Destroyed while parked, and under cancellation: as DoMsg.
class [[nodiscard]] WaitMsg {
 public:
  explicit WaitMsg(Message& m) noexcept : m_(m) {}
  WaitMsg(WaitMsg&& other) noexcept : m_(other.m_) {}  // before it is awaited (JoinHandle)
  WaitMsg& operator=(const WaitMsg&) = delete;
  ~WaitMsg() {
    if (parked_) [[unlikely]] {
      cw_.leave();
      detail::abandon(m_);
    }
  }

  // Ready when done with no reply port to collect it from; a reply to a port is collected in
  // await_suspend (from a thread port on another core, that takes a trip there).
  bool await_ready() noexcept {
    MSGPORT_CHECK_RULE(m_.flags() & kMsgInFlight, "wait_msg: waiting on a message nobody sent");
    return m_.done() && !detail::replies_to_a_port(m_);
  }
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    waiter_.arm(h);
    Cancellation* c = cancellation_of(h);
    if (c != nullptr && !m_.done()) {
      parked_ = detail::park_watched(m_, waiter_, *c, cw_, &on_cancel, this);
      if (parked_) return true;
    }
    parked_ = detail::park(m_, waiter_) || detail::collect(m_, waiter_);
    return parked_;
  }
  int await_resume() noexcept {
    parked_ = false;
    cw_.leave();
    return m_.result();
  }

 private:
  static void on_cancel(void* self) noexcept { abort_msg(static_cast<WaitMsg*>(self)->m_); }

  Message& m_;
  CoWaiter waiter_;
  bool parked_ = false;
  CancelWait cw_;
};

inline WaitMsg wait_msg(Message& m) noexcept { return WaitMsg(m); }

int wait_msg_blocking(Message& m);

inline bool check_msg(const Message& m) noexcept { return m.done(); }

void abort_msg(Message& m) noexcept;

bool drop_msg(Message& m) noexcept;

// ---- Agent side --------------------------------------------------------------------------------

namespace detail {

// The reply's delivery, on the context it belongs to: to the waiter or the reply port.
inline void deliver_reply(Message& m) noexcept {
  std::uint32_t s = MsgAccess::state(m).load(std::memory_order_acquire);
  Port* rp = MsgAccess::reply_port(m);
  if (rp == nullptr || (s & kMsgSyncHint)) {
    complete_from(m, s);
  } else {
    rp->put_reply(m);
  }
}

// A reply with its result stored, taken where it belongs, step by step:
//   1. A request taken from a thread port leaves that port's taken list on the port's context
//      (the list is that context's alone): from elsewhere the reply goes there first.
//   2. A message held locally (kHeldLocally) on another context is completed there: its sender
//      may park there with a plain store at any moment, so no other thread may complete it until
//      the sender has parked (kParked, published with release; it writes the word no more then),
//      and its reply port may be that context's alone, so a reply to a port is always finished
//      there. That happens only when the holder moved (migrated) or handed the message to another
//      thread, forwarded or not: a forward's kForwarded may be erased by the sender's plain store,
//      so it does not count here.
//   3. Then it goes to its waiter or its reply port.
inline void route_reply(Message& m) noexcept {
  if (MsgQueue::in_a_queue(m)) [[unlikely]] {
    if (Context* list = MsgQueue::taken_context(m); list != nullptr && list != Context::current()) {
      list->post_reply(m);
      return;
    }
    MsgQueue::leave_taken(m);  // no longer held by the thread that took it (ports/msg_queue.h)
  }
  // One load of the state serves the held-locally check and the delivery.
  std::uint32_t s = MsgAccess::state(m).load(std::memory_order_acquire);
  Port* rp = MsgAccess::reply_port(m);
  const bool to_port = rp != nullptr && !(s & kMsgSyncHint);
  if ((s & kHeldLocally) && (!(s & kParked) || to_port)) {
    if (Context* home = MsgAccess::held_on(m); home != Context::current()) [[unlikely]] {
      home->post_reply(m);  // step 2
      return;
    }
  }
  if (to_port) {
    rp->put_reply(m);
  } else {
    complete_from(m, s);
  }
}

// Finishes a reply that Context::post_reply brought here (route_reply again). On a context that no
// longer runs (a stopped core) the caller is the only one left: it finishes the reply itself,
// the held-locally mark cleared first, so that nothing sends the reply back there.
void finish_posted_reply(Message& m, bool context_stopped) noexcept;

}  // namespace detail

inline void reply_msg(Message& m, int result) noexcept {
  MSGPORT_CHECK_RULE(result != kAsync, "reply_msg: kAsync is not a result");
  MSGPORT_CHECK_RULE(m.in_flight(),
                     "reply_msg: a message is replied exactly once, and only after it was sent");
  detail::MsgAccess::result(m) = result;
  detail::route_reply(m);
}

template <PortType P>
void forward_msg(P& port, Message& m) {
  MSGPORT_CHECK_RULE(m.in_flight(), "forward_msg: only a message in flight can be forwarded");
  if (Context* list = MsgQueue::taken_context(m); list != nullptr && list != Context::current()) {
    detail::broken_rule(
        "forward_msg: a request taken from a thread port is forwarded on that port's core (a "
        "thread that migrated forwards it once it is back, or replies it)",
        __FILE__, __LINE__);
  }
  MsgQueue::leave_taken(m);
  // Acquire-release: a parked state stored plainly (kHeldLocally) travels with the message.
  detail::MsgAccess::state(m).fetch_or(detail::kForwarded, std::memory_order_acq_rel);
  detail::MsgAccess::holder(m).store(&port, std::memory_order_release);
  int r = port.begin_msg(m);
  if (r != kAsync) reply_msg(m, r);
}

}  // namespace msgport
