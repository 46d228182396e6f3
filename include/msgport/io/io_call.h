// msgport/io/io_call.h — IoCall: an IoMsg built in the awaiting coroutine's frame and sent to the
// calling core's device port when awaited.
//
//   int n = co_await IoCall([&](IoMsg& m) { m.op = IoOp::kRead; m.fd = fd; ... });
//
// The typed wrappers (io/file.h, io/tcp.h) return IoCalls. Awaiting one sends its message
// (do_msg): it completes without suspending when the device port acted inline, and parks until
// the completion's reply otherwise. The result is the operation's (>= 0, or -errno). An IoCall is
// awaited once, on a core (elsewhere the await throws std::logic_error); it is not copyable or
// movable, so it stays where the coroutine frame holds it while the kernel uses its message.
#pragma once

#include <msgport/io/device_port.h>
#include <msgport/io/io_msg.h>
#include <msgport/ports/ops.h>

#include <coroutine>
#include <utility>

namespace msgport::io {

class [[nodiscard]] IoCall {
 public:
  template <class Prep>
  explicit IoCall(Prep prep) {
    prep(msg_);
  }
  IoCall(const IoCall&) = delete;
  IoCall& operator=(const IoCall&) = delete;

  bool await_ready() {
    int r = detail::begin(device_port(), msg_, kMsgSyncHint);
    if (r != kAsync) detail::finish_inline(msg_, r);
    return wait_.await_ready();
  }
  // Typed: a lightweight thread's cancellation reaches the message (DoMsg).
  template <class P>
  bool await_suspend(std::coroutine_handle<P> h) noexcept {
    return wait_.await_suspend(h);
  }
  int await_resume() noexcept { return wait_.await_resume(); }

  // The message, before it is awaited (a deadline, say: call(...).with_timeout(d) is shorter).
  IoMsg& msg() noexcept { return msg_; }

 private:
  IoMsg msg_;
  DoMsg wait_{msg_};
};

}  // namespace msgport::io
