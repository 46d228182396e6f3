// Regressions: each test pins down a contract bug found in review, in the order a user would
// trip over it. Deterministic: a preempted thread is modelled by a hook that runs at the worst
// moment.
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>

#include <cerrno>
#include <functional>
#include <utility>

#include "tests/test_support.h"

namespace msgport {
namespace {

using testing::HoldingPort;
using testing::ValueMsg;

Task<int> do_one(Port& port, Message& m) { co_return co_await do_msg(port, m); }

// A QueuePort whose remove_queued first runs a hook: the dropping or aborting thread was
// preempted between reading m's holder and taking the holder's lock.
class PreemptedPort final : public BasicQueuePort<SpinLock> {
 public:
  std::function<void()> hook;
  bool remove_queued(Message& m, bool reply) noexcept override {
    if (hook) std::exchange(hook, nullptr)();
    return BasicQueuePort<SpinLock>::remove_queued(m, reply);
  }
};

// A user port that queues on a bare MsgQueue and does not refuse abort-requested messages.
class Inbox final : public Port {
 public:
  MsgQueue queue;
  int begin_msg(Message& m) override {
    queue.push(m);
    return kAsync;
  }
};

TEST(Regression, DropAfterTheHolderForwardedTheMessageFailsAndTouchesNoOtherQueue) {
  PreemptedPort first;
  QueuePort second;
  ValueMsg m;
  m.set_dropable(true);
  send_msg(first, m);
  first.hook = [&] { forward_msg(second, *first.try_get()); };  // begun and passed on meanwhile
  EXPECT_FALSE(drop_msg(m)) << "begun: too late to drop";
  EXPECT_EQ(first.size(), 0u);
  EXPECT_EQ(second.size(), 1u);
  EXPECT_EQ(second.try_get(), &m) << "still in the new holder's queue";
  reply_msg(m, 0);
}

TEST(Regression, AbortAfterTheHolderForwardedTheMessageLeavesTheNewHolderAlone) {
  PreemptedPort first;
  Inbox inbox;
  ValueMsg m;
  m.set_abortable(true);
  send_msg(first, m);
  first.hook = [&] { forward_msg(inbox, *first.try_get()); };
  abort_msg(m);
  EXPECT_EQ(first.size(), 0u);
  EXPECT_FALSE(m.done()) << "the old holder must not cancel what it no longer holds";
  EXPECT_EQ(inbox.queue.pop(), &m);
  reply_msg(m, 0);
  EXPECT_TRUE(m.done());
}

TEST(Regression, DropRefusesAMessageSomeoneIsParkedOn) {
  QueuePort port;
  ValueMsg m;
  m.set_dropable(true);
  Task<int> t = do_one(port, m);
  t.start();
  ASSERT_FALSE(t.done());
  EXPECT_FALSE(drop_msg(m)) << "dropping would strand the parked sender";
  reply_msg(*port.try_get(), 3);
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.result(), 3);
}

TEST(Regression, AClosedSerializedPortRefusesEvenWhenItsSerializerIsFree) {
  int ran = 0;
  SerializedPort port([&ran](Message&) {
    ++ran;
    return 1;
  });
  port.close();
  ValueMsg m;
  EXPECT_EQ(do_msg_blocking(port, m), -ECANCELED);
  EXPECT_EQ(ran, 0);
}

TEST(Regression, ASerializedPortCompletesRepliesInsteadOfServingThem) {
  HoldingPort backend;
  int work_calls = 0;
  SerializedPort<std::function<int(Message&)>> port([&](Message&) {
    ++work_calls;
    return 0;
  });
  ValueMsg sub;
  sub.set_reply_port(&port);
  send_msg(backend, sub);
  reply_msg(*backend.take(), 7);
  EXPECT_TRUE(check_msg(sub));
  EXPECT_EQ(sub.result(), 7);
  EXPECT_EQ(port.size(), 0u) << "not queued for serve()";
  Task<void> owner = port.serve();
  owner.start();
  EXPECT_EQ(work_calls, 0);
  EXPECT_EQ(port.pending(), 0u);
  port.close();
  EXPECT_TRUE(owner.done());
}

#ifndef NDEBUG
void wait_twice_on_one_message() {
  HoldingPort port;
  ValueMsg m;
  send_msg(port, m);
  Task<int> first = [](Message& msg) -> Task<int> { co_return co_await wait_msg(msg); }(m);
  first.start();
  wait_msg_blocking(m);  // a second waiter on the same message
}

TEST(RegressionDeathTest, ASecondWaiterOnOneMessageIsCaught) {
  EXPECT_DEATH(wait_twice_on_one_message(), "broken rule: one waiter per message");
}
#endif

}  // namespace
}  // namespace msgport
