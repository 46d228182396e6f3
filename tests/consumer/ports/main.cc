// A program on msgport's ports layer alone: a synchronous agent called from a plain thread, and
// a LocalPort served by a coroutine. Needs neither Abseil nor liburing.
#include <msgport/ports/ports.h>

#include <cstdio>

namespace {

struct Ping : msgport::Message {
  int v = 0;
};

class Echo final : public msgport::Port {
 public:
  int begin_msg(msgport::Message& m) override { return static_cast<Ping&>(m).v; }
};

msgport::Task<void> doubler(msgport::LocalPort& port) {
  while (msgport::Message* m = co_await msgport::wait_port(port)) {
    msgport::reply_msg(*m, static_cast<Ping*>(m)->v * 2);
  }
}

msgport::Task<int> ask(msgport::LocalPort& port) {
  Ping p;
  p.v = 21;
  int r = co_await msgport::do_msg(port, p);
  port.close();
  co_return r;
}

}  // namespace

int main() {
  Echo echo;
  Ping ping;
  ping.v = 42;
  if (int r = msgport::do_msg_blocking(echo, ping); r != 42) {
    std::fprintf(stderr, "ports consumer: do_msg_blocking returned %d, expected 42\n", r);
    return 1;
  }
  msgport::LocalPort port;
  msgport::Task<void> server = doubler(port);
  server.start();
  if (int r = msgport::sync_wait(ask(port)); r != 42 || !server.done()) {
    std::fprintf(stderr, "ports consumer: round trip returned %d, expected 42\n", r);
    return 1;
  }
  std::printf("ports consumer: ok\n");
  return 0;
}
