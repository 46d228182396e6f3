// Smoke test for an installed msgport: headers are found under <prefix>/include, the exported
// targets link (ports, runtime with liburing and Abseil, io), and messages work: a synchronous
// agent from a plain thread, and a round trip to a lightweight thread on a runtime core.
#include <msgport/io/io.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/runtime.h>

#include <cstdio>

namespace {

struct Ping : msgport::Message {
  int v = 0;
};

class Echo final : public msgport::Port {
 public:
  int begin_msg(msgport::Message& m) override { return static_cast<Ping&>(m).v; }
};

msgport::Task<void> doubler(msgport::LwThread& self) {
  while (msgport::Message* m = co_await msgport::wait_port(self.port())) {
    msgport::reply_msg(*m, static_cast<Ping*>(m)->v * 2);
  }
}

msgport::Task<int> ask(msgport::ThreadPort& port) {
  Ping p;
  p.v = 21;
  co_return co_await msgport::do_msg(port, p);
}

}  // namespace

int main() {
  Echo echo;
  Ping ping;
  ping.v = 42;
  if (int r = msgport::do_msg_blocking(echo, ping); r != 42) {
    std::fprintf(stderr, "consumer: do_msg_blocking returned %d, expected 42\n", r);
    return 1;
  }
  msgport::RuntimeOptions options;
  options.cores = 1;
  msgport::Runtime rt(options);
  auto server = rt.spawn(0, doubler);
  int r = rt.block_on(ask(server.port()));
  rt.stop(msgport::StopMode::kCancel);
  if (r != 42) {
    std::fprintf(stderr, "consumer: round trip returned %d, expected 42\n", r);
    return 1;
  }
  std::printf("consumer: ok (io backend: %s)\n", msgport::io::backend_name());
  return 0;
}
