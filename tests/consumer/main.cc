// Smoke test for an installed msgport: headers are found under <prefix>/include, the exported
// targets link, and a synchronous message round trip works.
#include <cstdio>

#include "io/io.h"
#include "ports/message.h"
#include "ports/ops.h"
#include "ports/port.h"
#include "runtime/runtime.h"

namespace {

struct Ping : msgport::Message {
  int v = 0;
};

class Echo final : public msgport::Port {
 public:
  int begin_msg(msgport::Message& m) override { return static_cast<Ping&>(m).v; }
};

}  // namespace

int main() {
  Echo echo;
  Ping ping;
  ping.v = 42;
  const int result = msgport::do_msg_blocking(echo, ping);
  if (result != ping.v) {
    std::fprintf(stderr, "consumer: do_msg_blocking returned %d, expected %d\n", result, ping.v);
    return 1;
  }
  std::printf("consumer: ok (layers: %s, %s)\n", msgport::runtime::layer_name(),
              msgport::io::backend_name());
  return 0;
}
