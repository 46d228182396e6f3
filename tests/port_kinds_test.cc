// Port kinds: what each kind's agent does with a message, and where replies go.
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

Task<int> do_one(Port& port, Message& m) { co_return co_await do_msg(port, m); }

// ---- callback ports ------------------------------------------------------------------------

TEST(CallbackPort, TheFunctionIsTheAgentAndRunsInTheSendersContext) {
  int calls = 0;
  CallbackPort port([&calls](Message& m) {
    ++calls;
    return static_cast<ValueMsg&>(m).value + 1;
  });
  ValueMsg m;
  m.value = 41;
  EXPECT_EQ(do_msg_blocking(port, m), 42);
  EXPECT_EQ(calls, 1);
}

TEST(CallbackPort, TheFunctionMayTakeTheMessage) {
  Message* taken = nullptr;
  CallbackPort port([&taken](Message& m) {
    taken = &m;
    return kAsync;
  });
  ValueMsg m;
  Task<int> t = do_one(port, m);
  t.start();
  ASSERT_EQ(taken, &m);
  EXPECT_FALSE(t.done());
  reply_msg(*taken, 3);
  EXPECT_EQ(t.result(), 3);
}

TEST(CallbackReplyPort, RunsTheFunctionOnEachReplyBeforeTheMessageIsDone) {
  std::vector<int> results;
  CallbackReplyPort replies([&results](Message& m) {
    EXPECT_FALSE(m.done()) << "the sender cannot take it back while the callback runs";
    results.push_back(m.result());
  });
  HoldingPort port;
  ValueMsg a, b;
  a.set_reply_port(&replies);
  b.set_reply_port(&replies);
  send_msg(port, a);
  send_msg(port, b);
  reply_msg(*port.take(), 10);
  reply_msg(*port.take(), 20);
  EXPECT_EQ(results, (std::vector<int>{10, 20}));
  EXPECT_TRUE(a.done());
  EXPECT_TRUE(b.done());
}

TEST(CallbackReplyPort, RefusesMessagesSentToIt) {
  CallbackReplyPort replies([](Message&) {});
  ValueMsg m;
  EXPECT_EQ(do_msg_blocking(replies, m), -EOPNOTSUPP);
}

// ---- reply-only ports ----------------------------------------------------------------------

TEST(NullReplyPort, OnlyMarksTheMessageDone) {
  NullReplyPort null_port;
  HoldingPort port;
  ValueMsg m;
  m.set_reply_port(&null_port);
  send_msg(port, m);
  reply_msg(*port.take(), 4);
  EXPECT_TRUE(check_msg(m));
  EXPECT_EQ(m.result(), 4);
  EXPECT_FALSE(m.flags() & kMsgQueued);
}

TEST(NullReplyPort, RefusesMessagesSentToIt) {
  NullReplyPort null_port;
  ValueMsg m;
  EXPECT_EQ(do_msg_blocking(null_port, m), -EOPNOTSUPP);
}

TEST(ReplyPort, RefusesMessagesSentToIt) {
  ReplyPort replies;
  ValueMsg m;
  EXPECT_EQ(do_msg_blocking(replies, m), -EOPNOTSUPP);
  EXPECT_EQ(replies.size(), 0u);
}

// ---- queue port ----------------------------------------------------------------------------

Task<void> echo_owner(QueuePort& port, int n) {
  for (int i = 0; i < n; ++i) {
    Message* m = co_await wait_port(port);
    reply_msg(*m, static_cast<ValueMsg*>(m)->value);
  }
}

TEST(QueuePort, EveryMessageIsQueuedForTheOwner) {
  QueuePort port;
  ValueMsg m;
  m.value = 5;
  Task<int> sender = do_one(port, m);
  sender.start();
  EXPECT_FALSE(sender.done()) << "a queue port never acts at once";
  EXPECT_EQ(port.size(), 1u);
  Task<void> owner = echo_owner(port, 1);
  owner.start();
  EXPECT_TRUE(owner.done());
  ASSERT_TRUE(sender.done());
  EXPECT_EQ(sender.result(), 5);
}

TEST(QueuePort, RequestsAndRepliesShareTheOwnersQueue) {
  QueuePort own;  // a lightweight thread's port: its requests and its replies
  HoldingPort server;
  ValueMsg request, mine;
  mine.set_reply_port(&own);
  send_msg(server, mine);
  send_msg(own, request);
  reply_msg(*server.take(), 1);
  Message* first = own.try_get();
  Message* second = own.try_get();
  EXPECT_EQ(first, &request);
  EXPECT_FALSE(first->done()) << "a request";
  EXPECT_EQ(second, &mine);
  EXPECT_TRUE(second->done()) << "a reply";
}

// ---- serialized port -----------------------------------------------------------------------

TEST(SerializedPort, AFreeSerializerMeansTheSenderRunsTheAgentInline) {
  int served = 0;
  SerializedPort port([&served](Message& m) {
    ++served;
    return static_cast<ValueMsg&>(m).value * 3;
  });
  ValueMsg m;
  m.value = 2;
  Task<int> t = do_one(port, m);
  t.start();
  ASSERT_TRUE(t.done()) << "the lock was free: no queueing, no suspension";
  EXPECT_EQ(t.result(), 6);
  EXPECT_EQ(served, 1);
  EXPECT_EQ(port.size(), 0u);
}

struct Nested {
  ValueMsg inner;
  Task<int> pending;
};

TEST(SerializedPort, ABusySerializerQueuesForTheOwnerAndKeepsOrder) {
  std::vector<int> begun;
  Nested nested;
  SerializedPort<std::function<int(Message&)>>* self = nullptr;
  SerializedPort<std::function<int(Message&)>> port([&](Message& m) {
    int v = static_cast<ValueMsg&>(m).value;
    begun.push_back(v);
    if (v == 1) {
      // While the serializer is held, a message sent to this port cannot run inline.
      nested.inner.value = 2;
      nested.pending = do_one(*self, nested.inner);
      nested.pending.start();
    }
    return v * 10;
  });
  self = &port;
  ValueMsg first, third;
  first.value = 1;
  EXPECT_EQ(do_msg_blocking(port, first), 10);
  EXPECT_FALSE(nested.pending.done()) << "queued: the serializer was busy";
  EXPECT_EQ(port.pending(), 1u);
  // The serializer is free again, but a message is still waiting: a new one must queue behind
  // it rather than overtake it.
  third.value = 3;
  Task<int> later = do_one(port, third);
  later.start();
  EXPECT_FALSE(later.done());
  Task<void> owner = port.serve();
  owner.start();
  ASSERT_TRUE(nested.pending.done());
  ASSERT_TRUE(later.done());
  EXPECT_EQ(nested.pending.result(), 20);
  EXPECT_EQ(later.result(), 30);
  EXPECT_EQ(begun, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(port.pending(), 0u);
  // With nothing waiting, the next sender runs inline again.
  ValueMsg fourth;
  fourth.value = 4;
  EXPECT_EQ(do_msg_blocking(port, fourth), 40);
  port.close();
  EXPECT_TRUE(owner.done()) << "serve() ends when the port is closed and drained";
}

TEST(SerializedPort, AQueuedMessageCanBeAbortedAndTheCountStaysRight) {
  Nested nested;
  SerializedPort<std::function<int(Message&)>>* self = nullptr;
  SerializedPort<std::function<int(Message&)>> port([&](Message& m) {
    if (static_cast<ValueMsg&>(m).value == 1) {
      nested.inner.set_abortable(true);
      nested.pending = do_one(*self, nested.inner);
      nested.pending.start();
    }
    return 0;
  });
  self = &port;
  ValueMsg first;
  first.value = 1;
  do_msg_blocking(port, first);
  ASSERT_EQ(port.pending(), 1u);
  abort_msg(nested.inner);
  ASSERT_TRUE(nested.pending.done());
  EXPECT_EQ(nested.pending.result(), -ECANCELED);
  EXPECT_EQ(port.pending(), 0u);
  ValueMsg next;
  EXPECT_EQ(do_msg_blocking(port, next), 0) << "inline again";
}

// ---- shim ----------------------------------------------------------------------------------

TEST(ShimPort, ASynchronousTargetAnswersStraightThroughTheShim) {
  CallbackPort target([](Message& m) { return static_cast<ValueMsg&>(m).value + 100; });
  ShimPort shim(target);
  ValueMsg m;
  m.value = 1;
  Task<int> t = do_one(shim, m);
  t.start();
  ASSERT_TRUE(t.done());
  EXPECT_EQ(t.result(), 101);
}

TEST(ShimPort, TheTargetHoldsWhatTheShimPassedOn) {
  HoldingPort target;
  ShimPort shim(target);
  ValueMsg m;
  Task<int> t = do_one(shim, m);
  t.start();
  EXPECT_EQ(m.holder(), &target);
  reply_msg(*target.take(), 8);
  EXPECT_EQ(t.result(), 8);
}

TEST(ShimPort, TheBoundaryCanRefuseAMessage) {
  HoldingPort target;
  ShimPort shim(target,
                [](Message& m) { return static_cast<ValueMsg&>(m).value < 0 ? -EINVAL : 0; });
  ValueMsg bad;
  bad.value = -1;
  EXPECT_EQ(do_msg_blocking(shim, bad), -EINVAL);
  EXPECT_EQ(target.size(), 0u);
}

}  // namespace
}  // namespace msgport
