// examples/runtime_tour.cc — the README's runtime example: a server thread, a client with a
// timer and a deadline, a clean stop. Runs on any number of CPUs, one included.
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/timer.h>

using namespace msgport;

int main() {
  Runtime rt;  // one core per CPU this process may use (rt.size())
  auto server = rt.spawn(rt.size() - 1, [](LwThread& self) -> Task<void> {
    while (Message* m = co_await wait_port(self.port())) reply_msg(*m, 1);
  });
  int r = rt.block_on([](ThreadPort& to) -> Task<int> {  // runs on core 0
    Message m;
    co_await sleep_for(absl::Milliseconds(1));
    co_return co_await do_msg_until(to, m, absl::Now() + absl::Seconds(1));
  }(server.port()));
  rt.stop();  // drain; StopMode::kCancel cancels instead
  return r == 1 ? 0 : 1;
}
