// msgport/ports/reply_ports.h — reply-only ports: where messages come back, never where they are
// sent.
//
// NullReplyPort: a reply only marks the message done; the sender polls with check_msg or waits
// with wait_msg. (A message with no reply port at all behaves the same.)
// ReplyPort:     replies queue in order; the sender collects them with wait_port (any reply)
//                or wait_msg (one message). Thread-safe: replies may come from any thread.
// Both refuse messages sent to them with -EOPNOTSUPP. ReplyPort counts what came back
// (counters().replies, ports/port_counters.h). See also CallbackReplyPort
// (ports/callback_port.h), which runs a function per reply.
#pragma once

#include <msgport/ports/port.h>
#include <msgport/ports/queue_port.h>

#include <cerrno>

namespace msgport {

class NullReplyPort final : public Port {
 public:
  int begin_msg(Message&) override { return -EOPNOTSUPP; }
};

class ReplyPort final : public QueuePort {
 public:
  int begin_msg(Message&) override { return -EOPNOTSUPP; }
};

}  // namespace msgport
