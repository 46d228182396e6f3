// Counters of the port kinds that queue (ports/port_counters.h): after a known sequence of
// messages each counter says exactly what happened — sync, async, queued, refused, aborted,
// cancelled, replies — and prints so.
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>
#include <msgport/ports/serialized_port.h>

#include <cerrno>
#include <functional>
#include <sstream>
#include <string>

#include "tests/test_support.h"

namespace msgport {
namespace {

using testing::ValueMsg;

// The owner: replies each request with its value plus one, until the port is closed and empty.
template <class QPort>
Task<void> serve(QPort& port) {
  while (Message* m = co_await wait_port(port)) {
    if (!m->done()) reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
  }
}

// A port whose agent answers at once: to bring a reply back to a port under test.
auto answer_now() {
  return CallbackPort([](Message&) { return 7; });
}

template <class QPort>
void a_known_sequence_is_counted() {
  QPort port;
  // Three requests while nobody serves: taken and queued.
  ValueMsg a, b, c;
  c.set_abortable(true);
  send_msg(port, a);
  send_msg(port, b);
  send_msg(port, c);
  PortCounters n = port.counters();
  EXPECT_EQ(n.async, 3u);
  EXPECT_EQ(n.queued, 3u);
  // One aborted while queued: taken back out and replied -ECANCELED.
  abort_msg(c);
  ASSERT_TRUE(c.done());
  EXPECT_EQ(c.result(), -ECANCELED);
  EXPECT_EQ(port.counters().aborted, 1u);
  EXPECT_EQ(port.counters().queued, 3u) << "queued counts what waited, not what waits now";
  // The owner starts: it serves the two left, then parks; the next request goes straight to it.
  Task<void> owner = serve(port);
  owner.start();
  EXPECT_TRUE(a.done() && b.done());
  ValueMsg d;
  d.value = 4;
  EXPECT_EQ(do_msg_blocking(port, d), 5);
  n = port.counters();
  EXPECT_EQ(n.async, 4u);
  EXPECT_EQ(n.queued, 3u) << "the fourth was handed to the waiting owner";
  // A reply coming back to the port (its reply port) is counted as a reply.
  auto now = answer_now();
  ValueMsg e;
  e.set_reply_port(&port);
  send_msg(now, e);
  EXPECT_TRUE(e.done());
  EXPECT_EQ(port.counters().replies, 1u);
  // Refused: every request after close().
  port.close();
  ValueMsg f;
  EXPECT_EQ(do_msg_blocking(port, f), -ECANCELED);
  n = port.counters();
  EXPECT_EQ(n.refused, 1u);
  EXPECT_EQ(n.sync, 0u) << "a queue port never acts inline";
  EXPECT_EQ(n.cancelled, 0u);
  EXPECT_TRUE(owner.done());
  EXPECT_EQ(n.to_string(), "sync=0 async=4 queued=3 refused=1 aborted=1 cancelled=0 replies=1");
  std::ostringstream os;
  os << n;
  EXPECT_EQ(os.str(), n.to_string());
}

TEST(PortCounters, AQueuePortCountsAKnownSequence) { a_known_sequence_is_counted<QueuePort>(); }

TEST(PortCounters, ALocalPortCountsAKnownSequence) { a_known_sequence_is_counted<LocalPort>(); }

// cancel_all (what a port going away does): the requests it still held are counted cancelled;
// a queued reply is let go, not counted.
TEST(PortCounters, RequestsAPortDropsForGoodAreCountedCancelled) {
  QueuePort port;
  ValueMsg a, b, r;
  send_msg(port, a);
  send_msg(port, b);
  auto now = answer_now();
  r.set_reply_port(&port);
  send_msg(now, r);
  port.cancel_all();
  EXPECT_EQ(a.result(), -ECANCELED);
  EXPECT_EQ(b.result(), -ECANCELED);
  PortCounters n = port.counters();
  EXPECT_EQ(n.cancelled, 2u);
  EXPECT_EQ(n.replies, 1u);
  EXPECT_EQ(n.async, 2u);
}

TEST(PortCounters, AReplyPortCountsItsReplies) {
  ReplyPort replies;
  auto now = answer_now();
  ValueMsg m[3];
  for (ValueMsg& one : m) {
    one.set_reply_port(&replies);
    send_msg(now, one);
  }
  EXPECT_EQ(replies.counters().replies, 3u);
  EXPECT_EQ(replies.counters().async, 0u);
}

TEST(PortCounters, ASerializedPortCountsInlineQueuedRefusedAbortedAndReplies) {
  using Work = std::function<int(Message&)>;
  SerializedPort<Work>* self = nullptr;
  ValueMsg nested;
  nested.set_abortable(true);
  SerializedPort<Work> port([&](Message& m) {
    int v = static_cast<ValueMsg&>(m).value;
    if (v == 1) send_msg(*self, nested);  // the serializer is held: this one must queue
    return v * 10;
  });
  self = &port;
  ValueMsg first, second;
  first.value = 1;
  EXPECT_EQ(do_msg_blocking(port, first), 10);  // inline
  EXPECT_FALSE(nested.done()) << "queued behind the busy serializer";
  PortCounters n = port.counters();
  EXPECT_EQ(n.sync, 1u);
  EXPECT_EQ(n.async, 1u);
  EXPECT_EQ(n.queued, 1u);
  abort_msg(nested);
  EXPECT_EQ(nested.result(), -ECANCELED);
  EXPECT_EQ(port.counters().aborted, 1u);
  second.value = 2;
  EXPECT_EQ(do_msg_blocking(port, second), 20);  // nothing waits any more: inline again
  EXPECT_EQ(port.counters().sync, 2u);
  // A reply addressed to the serialized port only completes, and is counted.
  auto now = answer_now();
  ValueMsg back;
  back.set_reply_port(&port);
  send_msg(now, back);
  EXPECT_TRUE(back.done());
  EXPECT_EQ(port.counters().replies, 1u);
  port.close();
  ValueMsg late;
  EXPECT_EQ(do_msg_blocking(port, late), -ECANCELED);
  n = port.counters();
  EXPECT_EQ(n.refused, 1u);
  EXPECT_EQ(n.to_string(), "sync=2 async=1 queued=1 refused=1 aborted=1 cancelled=0 replies=1");
}

}  // namespace
}  // namespace msgport
