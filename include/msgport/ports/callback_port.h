// msgport/ports/callback_port.h — put-only ports whose agent is a function.
//
// CallbackPort<F>: the agent is F, called in the sender's context with the message. F returns a
// result (the port acted at once) or kAsync (F took the message and will reply or forward it).
// Nothing is queued; F must not block. The concrete type is final, so do_msg on a
// CallbackPort<F>& inlines F.
//
// CallbackReplyPort<F>: a reply-only port that calls F(m) when m comes back, with m's result
// set. Only after F returns is m marked done (and a wait_msg parked on it woken), so a sender
// that polls check_msg never takes m back while F still uses it. F runs on the replier's thread
// and must not block. Sending to it is refused with -EOPNOTSUPP.
#pragma once

#include <msgport/ports/ops.h>

#include <cerrno>
#include <concepts>
#include <utility>

namespace msgport {

template <class F>
requires std::is_invocable_r_v<int, F&, Message&>
class CallbackPort final : public Port {
 public:
  explicit CallbackPort(F agent) : agent_(std::move(agent)) {}
  int begin_msg(Message& m) override { return agent_(m); }

 private:
  F agent_;
};

template <class F>
requires std::is_invocable_v<F&, Message&>
class CallbackReplyPort final : public Port {
 public:
  explicit CallbackReplyPort(F on_reply) : on_reply_(std::move(on_reply)) {}

  int begin_msg(Message&) override { return -EOPNOTSUPP; }

  void put_reply(Message& m) noexcept override {
    on_reply_(m);
    detail::complete(m);
  }

 private:
  F on_reply_;
};

}  // namespace msgport
