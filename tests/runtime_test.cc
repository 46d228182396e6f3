// The per-core runtime: cores, lightweight threads, cross-core messages, joins, shutdown.
#include "runtime/runtime.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <stdexcept>
#include <string>

#include "ports/ports.h"
#include "tests/test_support.h"

namespace msgport {
namespace {

using testing::ValueMsg;

RuntimeOptions two_cores(WakeMode wake = WakeMode::kMsgRing) {
  RuntimeOptions o;
  o.cores = 2;
  o.wake = wake;
  return o;
}

Task<int> answer() { co_return 42; }

TEST(Runtime, BlockOnRunsATaskOnCoreZero) {
  Runtime rt(two_cores());
  EXPECT_EQ(rt.size(), 2);
  auto on_core = []() -> Task<int> { co_return Core::current()->id(); };
  EXPECT_EQ(rt.block_on(answer()), 42);
  EXPECT_EQ(rt.block_on(on_core()), 0);
  rt.stop();
}

// A server: replies value * 2 to every request on its thread port, until the port closes.
Task<int> doubler(LwThread& self) {
  int served = 0;
  while (Message* m = co_await wait_port(self.port())) {
    if (Core::current() != &self.core()) co_return -1;  // must run on its own core
    reply_msg(*m, static_cast<ValueMsg*>(m)->value * 2);
    ++served;
  }
  co_return served;
}

Task<int> client(ThreadPort& server, int n) {
  ValueMsg m;
  int sum = 0;
  for (int i = 0; i < n; ++i) {
    m.value = i;
    int r = co_await do_msg(server, m);
    if (Core::current()->id() != 0) co_return -1;  // resumed on its own core
    sum += r;
  }
  co_return sum;
}

TEST(Runtime, CrossCoreRoundTripsWithMsgRingWakeups) {
  Runtime rt(two_cores(WakeMode::kMsgRing));
  auto server = rt.spawn(1, doubler);
  const int n = 10000;
  EXPECT_EQ(rt.block_on(client(server.port(), n)), n * (n - 1));
  auto c = rt.counters();
  EXPECT_GT(c[0].sent_cross_core, 0u);
  EXPECT_GT(c[1].sent_cross_core, 0u);
  rt.stop(StopMode::kCancel);
}

TEST(Runtime, CrossCoreRoundTripsWithEventfdWakeups) {
  Runtime rt(two_cores(WakeMode::kEventfd));
  auto server = rt.spawn(1, doubler);
  const int n = 10000;
  EXPECT_EQ(rt.block_on(client(server.port(), n)), n * (n - 1));
  rt.stop(StopMode::kCancel);
}

Task<int> thrower() {
  throw std::runtime_error("boom");
  co_return 0;
}

TEST(Runtime, AnExceptionReachesWhoeverJoins) {
  Runtime rt(two_cores());
  auto h = rt.spawn(1, thrower());
  EXPECT_THROW(h.join(), std::runtime_error);
  rt.stop();
}

TEST(Runtime, SpawningOnACoreThatDoesNotExistIsAnError) {
  Runtime rt(two_cores());
  EXPECT_THROW(rt.spawn(2, answer()), std::out_of_range);
  EXPECT_THROW(rt.spawn(-1, answer()), std::out_of_range);
  rt.stop();
  EXPECT_THROW(rt.spawn(0, answer()), std::logic_error);
  rt.stop();  // twice: harmless
}

TEST(Runtime, DrainLetsRunningThreadsFinishAndCancelRepliesQueuedMessages) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, doubler);
  ValueMsg m;
  m.value = 5;
  EXPECT_EQ(do_msg_blocking(server.port(), m), 10);  // from a plain thread, across to core 1
  rt.stop(StopMode::kCancel);
  EXPECT_EQ(server.join(), 1) << "the server saw its port close and ended";
  ValueMsg late;
  EXPECT_EQ(do_msg_blocking(server.port(), late), -ECANCELED) << "a closed port refuses";
}

}  // namespace
}  // namespace msgport
