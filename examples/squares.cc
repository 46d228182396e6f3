// examples/squares.cc — the README's example: one port, two answers.
//
// The Squarer's agent answers small numbers at once, in the sender's context; large ones it
// queues for its owner coroutine, which replies later. The client co_awaits both the same way.
#include <msgport/ports/ports.h>

#include <cstdio>

using namespace msgport;

// A message: the sender owns it; here it lives in the client's coroutine frame.
struct Square : Message {
  int x = 0;
};

// The agent decides per message: act now, or queue for the owner.
class Squarer final : public LocalPort {
 public:
  int begin_msg(Message& m) override {
    int x = static_cast<Square&>(m).x;
    if (x < 100) return x * x;       // synchronous: no queue, no suspension
    return LocalPort::begin_msg(m);  // asynchronous: queued for the owner
  }
};

// The owner serves what was queued, and replies.
Task<void> serve(Squarer& port) {
  while (Message* m = co_await wait_port(port)) {
    int x = static_cast<Square*>(m)->x;
    reply_msg(*m, x * x);
  }
}

Task<int> client(Squarer& port) {
  Square small, large;
  small.x = 7;
  large.x = 1000;
  int a = co_await do_msg(port, small);  // completes inline
  int b = co_await do_msg(port, large);  // waits for the owner's reply
  std::printf("7^2 = %d (%s), 1000^2 = %d (%s)\n", a,
              small.flags() & kMsgReplied ? "replied" : "answered at once", b,
              large.flags() & kMsgReplied ? "replied" : "answered at once");
  port.close();
  bool as_described = !(small.flags() & kMsgReplied) && (large.flags() & kMsgReplied);
  co_return as_described ? a + b : -1;
}

int main() {
  Squarer port;
  Task<void> owner = serve(port);
  owner.start();  // parks, waiting for messages
  int sum = sync_wait(client(port));
  return sum == 49 + 1'000'000 && owner.done() ? 0 : 1;
}
