// The two server-loop shapes the README recommends for g++ 12, which miscompiles a loop whose
// whole condition is a co_await converted to bool (`while (co_await wait_port(p))`). The README
// quotes serve_while and serve_for from this file; each must serve every request, then end when
// its port closes.
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>

namespace msgport {
namespace {

Task<int> serve_while(LocalPort& port) {
  int n = 0;
  while (Message* m = co_await wait_port(port)) {  // fine: the message declared in the condition
    reply_msg(*m, ++n);
  }
  co_return n;
}

Task<int> serve_for(LocalPort& port) {
  int n = 0;
  for (;;) {  // fine: the message tested in the body
    Message* m = co_await wait_port(port);
    if (m == nullptr) break;
    reply_msg(*m, ++n);
  }
  co_return n;
}

Task<int> ask_three(LocalPort& port) {
  Message m;
  int sum = 0;
  for (int i = 0; i < 3; ++i) sum += co_await do_msg(port, m);
  port.close();
  co_return sum;
}

void check_serves_then_ends(Task<int> (*serve)(LocalPort&)) {
  LocalPort port;
  Task<int> server = serve(port);
  server.start();
  EXPECT_EQ(sync_wait(ask_three(port)), 1 + 2 + 3);
  ASSERT_TRUE(server.done());
  EXPECT_EQ(server.result(), 3);
}

TEST(LoopForms, DeclaredInTheCondition) { check_serves_then_ends(serve_while); }
TEST(LoopForms, TestedInTheBody) { check_serves_then_ends(serve_for); }

}  // namespace
}  // namespace msgport
