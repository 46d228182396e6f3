// Where a woken coroutine runs: a reply resumes a sender parked on the same context directly (no
// queueing); a message arriving for a parked port owner schedules the owner on its context; a
// reply from another thread schedules the sender back onto its own context. And LocalPort, the
// queue port for one context, whose round trips need no atomic and no lock.
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>

#include <thread>
#include <vector>

#include "tests/test_support.h"

namespace msgport {
namespace {

using testing::HoldingPort;
using testing::LoopContext;
using testing::ValueMsg;

Task<int> do_one(Port& port, Message& m, bool& resumed) {
  int r = co_await do_msg(port, m);
  resumed = true;
  co_return r;
}

TEST(Context, AReplyOnTheSendersContextResumesItDirectly) {
  LoopContext ctx;
  Context::Bind bind(&ctx);
  HoldingPort port;
  ValueMsg m;
  bool resumed = false;
  Task<int> t = do_one(port, m, resumed);
  t.start();
  ASSERT_FALSE(resumed);
  reply_msg(*port.take(), 5);
  EXPECT_TRUE(resumed) << "resumed inside reply_msg: the reply is not queued";
  EXPECT_EQ(ctx.scheduled(), 0u);
  EXPECT_EQ(t.result(), 5);
}

TEST(Context, AReplyFromAnotherThreadSchedulesTheSenderOnItsContext) {
  LoopContext ctx;
  HoldingPort port;
  ValueMsg m;
  bool resumed = false;
  Task<int> t = do_one(port, m, resumed);
  {
    Context::Bind bind(&ctx);
    t.start();
  }
  Message* held = port.take();
  std::thread replier([held] { reply_msg(*held, 6); });
  replier.join();
  EXPECT_FALSE(resumed) << "never run on the replier's thread";
  EXPECT_EQ(ctx.scheduled(), 1u);
  ctx.run_until([&] { return t.done(); });
  EXPECT_TRUE(resumed);
  EXPECT_EQ(t.result(), 6);
}

Task<void> owner_loop(LocalPort& port, std::vector<int>& seen) {
  while (Message* m = co_await wait_port(port)) {
    seen.push_back(static_cast<ValueMsg*>(m)->value);
    reply_msg(*m, static_cast<ValueMsg*>(m)->value * 10);
  }
}

TEST(Context, AMessageForAParkedOwnerSchedulesTheOwnerInsteadOfRunningItInline) {
  LoopContext ctx;
  Context::Bind bind(&ctx);
  LocalPort port;
  std::vector<int> seen;
  Task<void> owner = owner_loop(port, seen);
  owner.start();  // parks on the empty port
  ValueMsg m;
  m.value = 1;
  bool resumed = false;
  Task<int> sender = do_one(port, m, resumed);
  sender.start();
  EXPECT_TRUE(seen.empty()) << "the send did not run the owner inside the sender";
  EXPECT_EQ(ctx.scheduled(), 1u);
  EXPECT_FALSE(resumed);
  ctx.run_until([&] { return sender.done(); });
  EXPECT_EQ(seen, std::vector<int>{1});
  EXPECT_EQ(sender.result(), 10);
  port.close();
  ctx.run_until([&] { return owner.done(); });
}

Task<int> many_round_trips(LocalPort& port, int n) {
  ValueMsg m;
  int sum = 0;
  for (int i = 0; i < n; ++i) {
    m.value = i;
    m.set_priority(i % 3 == 0);
    sum += co_await do_msg(port, m);
  }
  port.close();
  co_return sum;
}

TEST(LocalPort, RoundTripsOnOneContextReplyEveryMessageOnceInOrder) {
  LoopContext ctx;
  Context::Bind bind(&ctx);
  LocalPort port;
  std::vector<int> seen;
  Task<void> owner = owner_loop(port, seen);
  owner.start();
  constexpr int kN = 1000;
  Task<int> sender = many_round_trips(port, kN);
  sender.start();
  ctx.run_until([&] { return sender.done() && owner.done(); });
  int expected = 0;
  std::vector<int> order;
  for (int i = 0; i < kN; ++i) {
    expected += i * 10;
    order.push_back(i);
  }
  EXPECT_EQ(sender.result(), expected);
  EXPECT_EQ(seen, order);
}

TEST(LocalPort, BehavesAsAQueuePortForOrderDropAndAbort) {
  LocalPort port;
  ValueMsg a, b, c;
  b.set_dropable(true);
  c.set_abortable(true);
  c.set_priority(true);
  send_msg(port, a);
  send_msg(port, b);
  send_msg(port, c);
  EXPECT_TRUE(drop_msg(b));
  Message* first = port.try_get();
  EXPECT_EQ(first, &c) << "priority first";
  abort_msg(c);  // begun: the holder decides
  EXPECT_FALSE(check_msg(c));
  reply_msg(c, 1);
  EXPECT_EQ(c.result(), 1);
  EXPECT_EQ(port.try_get(), &a);
  EXPECT_EQ(port.try_get(), nullptr);
  reply_msg(a, 0);
}

TEST(LocalPort, DestroyedWithQueuedMessagesRepliesThemEcanceled) {
  ValueMsg a;
  {
    LocalPort port;
    send_msg(port, a);
  }
  EXPECT_TRUE(check_msg(a));
  EXPECT_EQ(a.result(), -ECANCELED);
}

#ifndef NDEBUG
void use_local_port_from_two_contexts() {
  LoopContext one;
  LoopContext two;
  LocalPort port;
  ValueMsg a;
  ValueMsg b;
  {
    Context::Bind bind(&one);
    send_msg(port, a);
  }
  Context::Bind bind(&two);
  send_msg(port, b);
}

TEST(LocalPortDeathTest, UseFromTwoContextsIsCaught) {
  EXPECT_DEATH(use_local_port_from_two_contexts(),
               "broken rule: LocalPort: every user of a local port runs on one context");
}
#endif

}  // namespace
}  // namespace msgport
