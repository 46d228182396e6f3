// The message contract, rule by rule (DESIGN.md, "The contract"). Single-threaded: every
// outcome here is deterministic. The races are in race_test.cc.
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>

#include <cerrno>
#include <functional>
#include <vector>

#include "tests/test_support.h"

namespace msgport {
namespace {

using testing::HoldingPort;
using testing::ValueMsg;

// Acts at once on even values (doubles them); takes odd ones into its queue for the owner.
class EvenNowOddLater final : public QueuePort {
 public:
  int begin_msg(Message& m) override {
    int v = static_cast<ValueMsg&>(m).value;
    if (v % 2 == 0) return v * 2;
    return QueuePort::begin_msg(m);
  }
};

class Doubler final : public Port {
 public:
  int begin_msg(Message& m) override { return static_cast<ValueMsg&>(m).value * 2; }
};

Task<int> do_one(Port& port, Message& m) { co_return co_await do_msg(port, m); }

template <class P>
Task<int> do_one_concrete(P& port, Message& m) {
  co_return co_await do_msg(port, m);
}

// ---- do_msg --------------------------------------------------------------------------------

TEST(DoMsg, SynchronousAgentCompletesInlineWithoutSuspending) {
  Doubler port;
  ValueMsg m;
  m.value = 21;
  Task<int> t = do_one(port, m);
  t.start();
  ASSERT_TRUE(t.done()) << "a synchronous agent must not make do_msg suspend";
  EXPECT_EQ(t.result(), 42);
  EXPECT_TRUE(m.done());
  EXPECT_FALSE(m.flags() & kMsgReplied) << "acting at once is not a reply";
  EXPECT_FALSE(m.in_flight());
}

TEST(DoMsg, ConcretePortTypeGivesTheSameResult) {
  Doubler port;
  ValueMsg m;
  m.value = 5;
  Task<int> t = do_one_concrete(port, m);
  t.start();
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.result(), 10);
}

TEST(DoMsg, AsyncAgentParksTheSenderUntilTheReply) {
  HoldingPort port;
  ValueMsg m;
  Task<int> t = do_one(port, m);
  t.start();
  ASSERT_FALSE(t.done()) << "an async answer parks the sender";
  ASSERT_EQ(port.size(), 1u);
  EXPECT_TRUE(m.in_flight());
  EXPECT_FALSE(check_msg(m));
  reply_msg(*port.take(), 7);  // no context: the reply resumes the sender directly
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.result(), 7);
  EXPECT_TRUE(m.flags() & kMsgReplied);
}

TEST(DoMsg, SameMessageCanBeSentAgainAfterItsReply) {
  HoldingPort port;
  ValueMsg m;
  for (int round = 0; round < 3; ++round) {
    Task<int> t = do_one(port, m);
    t.start();
    reply_msg(*port.take(), round);
    ASSERT_TRUE(t.done());
    EXPECT_EQ(t.result(), round);
  }
}

TEST(DoMsg, ReplyDuringBeginMsgCompletesWithoutSuspending) {
  // The agent forwards to a port that acts at once: forward_msg replies before begin_msg even
  // returns kAsync, so the reply beats the park.
  Doubler inner;
  CallbackPort outer([&inner](Message& m) {
    forward_msg(inner, m);
    return kAsync;
  });
  ValueMsg m;
  m.value = 4;
  Task<int> t = do_one(outer, m);
  t.start();
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.result(), 8);
}

TEST(DoMsg, BlockingFormForPlainThreads) {
  Doubler port;
  ValueMsg m;
  m.value = 3;
  EXPECT_EQ(do_msg_blocking(port, m), 6);
  EXPECT_TRUE(m.done());
}

// ---- send_msg ------------------------------------------------------------------------------

TEST(SendMsg, SynchronousAgentIsRepliedToTheReplyPort) {
  Doubler port;
  ReplyPort replies;
  ValueMsg m;
  m.value = 8;
  m.set_reply_port(&replies);
  send_msg(port, m);
  // The sender sees the one behaviour of send_msg: the reply arrives at its reply port.
  ASSERT_TRUE(m.done());
  EXPECT_TRUE(m.flags() & kMsgReplied);
  EXPECT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies.try_get(), &m);
  EXPECT_EQ(m.result(), 16);
}

TEST(SendMsg, AsyncReplyArrivesAtTheReplyPort) {
  HoldingPort port;
  ReplyPort replies;
  ValueMsg m;
  m.set_reply_port(&replies);
  send_msg(port, m);
  EXPECT_FALSE(m.done());
  EXPECT_EQ(replies.size(), 0u);
  reply_msg(*port.take(), 11);
  EXPECT_EQ(replies.try_get(), &m);
  EXPECT_EQ(m.result(), 11);
}

TEST(SendMsg, WithoutReplyPortTheReplyOnlyMarksItDone) {
  HoldingPort port;
  ValueMsg m;
  send_msg(port, m);
  EXPECT_FALSE(check_msg(m));
  reply_msg(*port.take(), 1);
  EXPECT_TRUE(check_msg(m));
  EXPECT_EQ(m.result(), 1);
}

// ---- wait_msg / wait_port / check_msg ----------------------------------------------------------

Task<int> send_then_wait(Port& port, Message& m) {
  send_msg(port, m);
  co_return co_await wait_msg(m);
}

TEST(WaitMsg, ParksUntilThatMessageIsRepliedAndBypassesTheReplyQueue) {
  HoldingPort port;
  ReplyPort replies;
  ValueMsg m;
  m.set_reply_port(&replies);
  Task<int> t = send_then_wait(port, m);
  t.start();
  ASSERT_FALSE(t.done());
  reply_msg(*port.take(), 5);
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.result(), 5);
  EXPECT_EQ(replies.size(), 0u) << "a reply someone waits for is not queued";
}

TEST(WaitMsg, TakesAnAlreadyQueuedReplyOffTheReplyPort) {
  Doubler port;
  ReplyPort replies;
  ValueMsg m;
  m.value = 2;
  m.set_reply_port(&replies);
  Task<int> t = send_then_wait(port, m);  // send_msg replies at once: the reply is queued
  t.start();
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.result(), 4);
  EXPECT_EQ(replies.size(), 0u);
  EXPECT_FALSE(m.flags() & kMsgQueued);
}

TEST(WaitMsg, BlockingForm) {
  HoldingPort port;
  ValueMsg m;
  send_msg(port, m);
  reply_msg(*port.take(), 9);
  EXPECT_EQ(wait_msg_blocking(m), 9);
}

Task<void> collect(QueuePort& port, std::vector<Message*>& out, int n) {
  for (int i = 0; i < n; ++i) out.push_back(co_await wait_port(port));
}

TEST(WaitPort, ReturnsRepliesInTheOrderTheyCameBack) {
  HoldingPort port;
  ReplyPort replies;
  ValueMsg a, b, c;
  for (ValueMsg* m : {&a, &b, &c}) {
    m->set_reply_port(&replies);
    send_msg(port, *m);
  }
  std::vector<Message*> got;
  Task<void> t = collect(replies, got, 3);
  t.start();
  EXPECT_TRUE(got.empty());
  Message* first = port.take();
  Message* second = port.take();
  Message* third = port.take();
  reply_msg(*third, 3);
  reply_msg(*first, 1);
  reply_msg(*second, 2);
  ASSERT_TRUE(t.done());
  EXPECT_EQ(got, (std::vector<Message*>{&c, &a, &b}));
}

// ---- order ---------------------------------------------------------------------------------

TEST(Order, OneSendersMessagesAreBegunInOrderPriorityFirst) {
  QueuePort port;
  ValueMsg msgs[8];
  for (int i = 0; i < 8; ++i) {
    msgs[i].value = i;
    msgs[i].set_priority(i == 3 || i == 6);
    send_msg(port, msgs[i]);
  }
  std::vector<int> order;
  while (Message* m = port.try_get()) order.push_back(static_cast<ValueMsg*>(m)->value);
  EXPECT_EQ(order, (std::vector<int>{3, 6, 0, 1, 2, 4, 5, 7}));
}

Task<void> serve_values(QueuePort& port, std::vector<int>& seen, int n) {
  for (int i = 0; i < n; ++i) {
    Message* m = co_await wait_port(port);
    seen.push_back(static_cast<ValueMsg*>(m)->value);
    reply_msg(*m, 0);
  }
}

TEST(Order, AParkedOwnerReceivesMessagesInOrder) {
  QueuePort port;
  std::vector<int> seen;
  Task<void> owner = serve_values(port, seen, 4);
  owner.start();  // parks: nothing queued yet
  ValueMsg msgs[4];
  for (int i = 0; i < 4; ++i) {
    msgs[i].value = i;
    send_msg(port, msgs[i]);
  }
  ASSERT_TRUE(owner.done());
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3}));
  for (auto& m : msgs) EXPECT_TRUE(m.done());
}

// ---- ownership -----------------------------------------------------------------------------

struct Payload : Message {
  int written_by_agent = 0;
};

Task<int> send_and_read_payload(Port& port, Payload& m, bool& resumed) {
  co_await do_msg(port, m);
  resumed = true;
  co_return m.written_by_agent;
}

TEST(Ownership, TheSenderGetsTheMessageBackOnlyAfterItsReply) {
  HoldingPort port;
  Payload m;
  bool resumed = false;
  Task<int> t = send_and_read_payload(port, m, resumed);
  t.start();
  Message* held = port.take();
  ASSERT_EQ(held, &m);
  EXPECT_EQ(m.holder(), &port);
  // The agent owns it now: it writes the payload while the sender is parked.
  static_cast<Payload*>(held)->written_by_agent = 99;
  EXPECT_FALSE(resumed);
  EXPECT_FALSE(check_msg(m));
  reply_msg(*held, 0);
  EXPECT_TRUE(resumed);
  EXPECT_EQ(t.result(), 99);
}

// ---- forward_msg ---------------------------------------------------------------------------

TEST(ForwardMsg, TheNextHolderRepliesToTheOriginalSender) {
  HoldingPort first;
  QueuePort second;
  ValueMsg m;
  m.value = 1;
  Task<int> t = do_one(first, m);
  t.start();
  forward_msg(second, *first.take());
  EXPECT_EQ(m.holder(), &second);
  EXPECT_FALSE(t.done()) << "forwarding is not replying";
  Message* at_second = second.try_get();
  ASSERT_EQ(at_second, &m);
  reply_msg(*at_second, 77);
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.result(), 77);
}

TEST(ForwardMsg, ASynchronousNextAgentMeansForwardMsgReplies) {
  HoldingPort first;
  Doubler second;
  ValueMsg m;
  m.value = 6;
  Task<int> t = do_one(first, m);
  t.start();
  forward_msg(second, *first.take());
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.result(), 12);
}

// ---- drop_msg ------------------------------------------------------------------------------

TEST(DropMsg, TakesBackAQueuedMessageThatWasNotBegun) {
  QueuePort port;
  ValueMsg m;
  m.set_dropable(true);
  send_msg(port, m);
  ASSERT_EQ(port.size(), 1u);
  EXPECT_TRUE(drop_msg(m));
  EXPECT_EQ(port.size(), 0u) << "the owner never sees a dropped message";
  EXPECT_FALSE(m.in_flight());
  EXPECT_FALSE(check_msg(m)) << "a dropped message is never replied";
  // It is the sender's again: it can be sent anew.
  send_msg(port, m);
  EXPECT_EQ(port.try_get(), &m);
}

TEST(DropMsg, FailsOnceTheAgentHasBegunIt) {
  QueuePort port;
  ValueMsg m;
  m.set_dropable(true);
  send_msg(port, m);
  Message* begun = port.try_get();
  EXPECT_FALSE(drop_msg(m));
  reply_msg(*begun, 3);  // the reply still comes, exactly once
  EXPECT_TRUE(check_msg(m));
  EXPECT_EQ(m.result(), 3);
}

// ---- abort_msg -----------------------------------------------------------------------------

// Counts the replies that come back, so a test can see "exactly once".
struct CountingReplies {
  int count = 0;
  CallbackReplyPort<std::function<void(Message&)>> port{[this](Message&) { ++count; }};
};

TEST(AbortMsg, AQueuedMessageIsCancelledAndRepliedOnce) {
  QueuePort port;
  CountingReplies replies;
  ValueMsg m;
  m.set_abortable(true);
  m.set_reply_port(&replies.port);
  send_msg(port, m);
  abort_msg(m);
  EXPECT_EQ(replies.count, 1);
  EXPECT_EQ(m.result(), -ECANCELED);
  EXPECT_EQ(port.size(), 0u) << "the owner never begins a cancelled message";
  abort_msg(m);  // a second request after the reply changes nothing
  EXPECT_EQ(replies.count, 1);
}

TEST(AbortMsg, ABegunMessageFinishesWithItsOwnResult) {
  QueuePort port;
  CountingReplies replies;
  ValueMsg m;
  m.set_abortable(true);
  m.set_reply_port(&replies.port);
  send_msg(port, m);
  Message* begun = port.try_get();
  abort_msg(m);
  EXPECT_TRUE(begun->abort_requested()) << "the agent can see the request";
  EXPECT_EQ(replies.count, 0) << "the holder decides; it has not replied yet";
  reply_msg(*begun, 5);  // finished first
  EXPECT_EQ(replies.count, 1);
  EXPECT_EQ(m.result(), 5);
}

TEST(AbortMsg, AfterTheReplyItChangesNothing) {
  Doubler port;
  ValueMsg m;
  m.value = 1;
  m.set_abortable(true);
  send_msg(port, m);
  abort_msg(m);
  EXPECT_EQ(m.result(), 2);
}

TEST(AbortMsg, ANonAbortableMessageIsOnlyFlagged) {
  QueuePort port;
  CountingReplies replies;
  ValueMsg m;
  m.set_reply_port(&replies.port);
  send_msg(port, m);
  abort_msg(m);
  EXPECT_EQ(replies.count, 0);
  EXPECT_TRUE(m.abort_requested());
  ASSERT_EQ(port.try_get(), &m) << "still queued: not abortable";
  reply_msg(m, 0);
  EXPECT_EQ(replies.count, 1);
}

TEST(AbortMsg, AParkedSenderIsResumedWithEcanceled) {
  QueuePort port;
  ValueMsg m;
  m.set_abortable(true);
  Task<int> t = do_one(port, m);
  t.start();
  ASSERT_FALSE(t.done());
  abort_msg(m);
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.result(), -ECANCELED);
}

// ---- port lifetime -------------------------------------------------------------------------

TEST(PortLifetime, DestroyingAPortRepliesEveryQueuedMessageWithEcanceled) {
  CountingReplies replies;
  ValueMsg a, b;
  a.set_reply_port(&replies.port);
  b.set_reply_port(&replies.port);
  {
    QueuePort port;
    send_msg(port, a);
    send_msg(port, b);
  }
  EXPECT_EQ(replies.count, 2);
  EXPECT_EQ(a.result(), -ECANCELED);
  EXPECT_EQ(b.result(), -ECANCELED);
}

TEST(PortLifetime, AClosedPortRefusesNewMessagesAndDrainsTheOld) {
  QueuePort port;
  ValueMsg early, late;
  send_msg(port, early);
  port.close();
  send_msg(port, late);
  EXPECT_TRUE(check_msg(late));
  EXPECT_EQ(late.result(), -ECANCELED);
  std::vector<Message*> got;
  Task<void> t = collect(port, got, 2);
  t.start();
  ASSERT_TRUE(t.done());
  EXPECT_EQ(got, (std::vector<Message*>{&early, nullptr}));
}

TEST(PortLifetime, AnAbortableMessageAbortedBeforeItIsBegunIsRefused) {
  QueuePort port;
  HoldingPort first;
  ValueMsg m;
  m.set_abortable(true);
  send_msg(first, m);
  abort_msg(m);  // HoldingPort has no abort hook: only the request is recorded
  forward_msg(port, *first.take());
  EXPECT_TRUE(check_msg(m));
  EXPECT_EQ(m.result(), -ECANCELED);
  EXPECT_EQ(port.size(), 0u);
}

}  // namespace
}  // namespace msgport
