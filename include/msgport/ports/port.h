// msgport/ports/port.h — a port: a target for messages, and the place replies come back to.
//
// A port's agent, begin_msg(), has total control over each message sent to it (the seeds'
// mp_SendMsg): it may act at once, in the caller's context, and return the result (>= 0 or a
// -errno), or take the message — queue it, forward it, hand it to a device — and return kAsync.
// A message it took it must later complete with reply_msg() exactly once, or pass on with
// forward_msg(). An agent that acts at once must not block: when acting would block, queue.
//
// A port is used type-erased (Port&, one virtual call) or through its concrete type: derive a
// `final` class and the ops in ports/ops.h, being templates, call its begin_msg directly so the
// compiler can inline it.
//
// The other virtuals are the port's answers when it is a message's reply port or holder:
//
//   put_reply(m)       reply_msg(m) on a message whose reply port is this one and that nobody
//                      waits on directly. The default only marks it done (a null reply port).
//   abort(m)           abort_msg(m) on an abortable message this port holds. The default does
//                      nothing: the agent sees m.abort_requested() and replies when it can.
//   remove_queued(m, reply)  take m out of this port's queue if it is there as a request not yet
//                      begun (reply == false) or as a queued reply (reply == true). Used by
//                      drop_msg, by abort of a queued request, and by wait_msg. Default: false.
//   collect_reply(m, w)  wait_msg(m) found m done with its reply queued here: take it off. true
//                      means that happens later, elsewhere (the runtime's thread port on another
//                      core), and w is woken once it has. Default: remove_queued(m, true), false.
//
// Ports are not copyable or movable: messages point at them.
#pragma once

#include <msgport/ports/message.h>

namespace msgport {

class Port {
 public:
  Port() = default;
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;
  virtual ~Port() = default;

  // The agent. Returns a result when it acted at once, kAsync when it took the message.
  virtual int begin_msg(Message& m) = 0;

  virtual void put_reply(Message& m) noexcept;
  virtual void abort(Message& m) noexcept;
  virtual bool remove_queued(Message& m, bool reply) noexcept;
  virtual bool collect_reply(Message& m, Waiter& w) noexcept;
};

}  // namespace msgport
