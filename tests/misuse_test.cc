// Misuse that used to hang, leak or crash silently: each now fails loudly or works.
//   * an agent that throws (inline or in serve()) leaves a SerializedPort usable;
//   * a SerializedPort nobody serves: queued messages are served once serve() runs, and replied
//     -ECANCELED when the port is destroyed;
//   * Task::start() on a temporary does not compile;
//   * a held task that never runs does not keep its gate from closing;
//   * a sleep that needs no wait still throws off a core;
//   * an expired do_msg_until deadline is -ETIMEDOUT, other cancels stay -ECANCELED.
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/gate.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/timer.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tests/test_support.h"
#include "tests/watchdog.h"

namespace msgport {
namespace {

using testing::ValueMsg;
using testing::Watchdog;

constexpr std::chrono::seconds kLimit{20};

Task<int> do_one(Port& port, Message& m) { co_return co_await do_msg(port, m); }

using Serialized = SerializedPort<std::function<int(Message&)>>;

// ---- 1. an agent that throws --------------------------------------------------------------------

TEST(SerializedPortMisuse, AnAgentThatThrowsInlineReleasesTheSerializerAndThrowsToTheSender) {
  ValueMsg bad, good;
  Task<int> next;
  Serialized port([](Message& m) {
    int v = static_cast<ValueMsg&>(m).value;
    if (v == 1) throw std::runtime_error("bad value");
    return v * 10;
  });
  bad.value = 1;
  EXPECT_THROW(do_msg_blocking(port, bad), std::runtime_error);
  EXPECT_FALSE(bad.flags() & kMsgInFlight) << "not taken: the sender's again";
  EXPECT_EQ(port.pending(), 0u);

  // The serializer is free: the next message runs inline, it does not queue for a server.
  good.value = 2;
  next = do_one(port, good);
  next.start();
  ASSERT_TRUE(next.done()) << "queued behind a serializer the throw left locked";
  EXPECT_EQ(next.result(), 20);

  // From a coroutine: do_msg rethrows at the call, and the message may be sent again.
  EXPECT_THROW(sync_wait(do_one(port, bad)), std::runtime_error);
  bad.value = 3;
  EXPECT_EQ(do_msg_blocking(port, bad), 30);
  EXPECT_EQ(port.size(), 0u);
}

TEST(SerializedPortMisuse, AnAgentThatThrowsInServeRepliesECANCELEDAndServingGoesOn) {
  ValueMsg first, inner, third, fourth;
  Task<void> owner;
  Serialized* self = nullptr;
  Serialized port([&](Message& m) {
    int v = static_cast<ValueMsg&>(m).value;
    if (v == 1) send_msg(*self, inner);  // the serializer is held: inner queues
    if (v == 2) throw std::runtime_error("cannot serve 2");
    return v * 10;
  });
  self = &port;
  first.value = 1;
  inner.value = 2;
  third.value = 3;
  EXPECT_EQ(do_msg_blocking(port, first), 10);
  send_msg(port, third);  // queued behind inner, to keep the order
  ASSERT_EQ(port.pending(), 2u);
  ASSERT_FALSE(inner.done());

  ::testing::internal::CaptureStderr();
  owner = port.serve();
  owner.start();
  std::string report = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(inner.done()) << "a message F threw for was never replied";
  EXPECT_EQ(inner.result(), -ECANCELED);
  EXPECT_FALSE(owner.done()) << "serve() goes on after a failure";
  ASSERT_TRUE(third.done());
  EXPECT_EQ(third.result(), 30);
  EXPECT_EQ(port.failures(), 1u);
  EXPECT_NE(report.find("cannot serve 2"), std::string::npos) << report;
  EXPECT_EQ(port.pending(), 0u);

  fourth.value = 4;
  EXPECT_EQ(do_msg_blocking(port, fourth), 40) << "inline again";
  port.close();
  EXPECT_TRUE(owner.done());
}

// ---- 2. a serialized port nobody serves ---------------------------------------------------------

// A port whose agent, for message 1, sends `waiting` to the port itself (so that it queues) and
// records the task that waits for it.
struct Contended {
  ValueMsg first, waiting;
  Task<int> waiter;
  Serialized* self = nullptr;
  int operator()(Message& m) {
    int v = static_cast<ValueMsg&>(m).value;
    if (v == 1) {
      waiting.value = 2;
      waiter = do_one(*self, waiting);
      waiter.start();
    }
    return v * 10;
  }
};

TEST(SerializedPortMisuse, AQueuedMessageIsServedAsSoonAsServeRuns) {
  Contended c;
  Task<void> owner;
  Serialized port(std::ref(c));
  c.self = &port;
  c.first.value = 1;
  EXPECT_EQ(do_msg_blocking(port, c.first), 10);
  ASSERT_FALSE(c.waiter.done());
  EXPECT_EQ(port.pending(), 1u) << "nobody serves yet: it waits, and pending() says so";
  owner = port.serve();
  owner.start();
  ASSERT_TRUE(c.waiter.done());
  EXPECT_EQ(c.waiter.result(), 20);
  port.close();
  EXPECT_TRUE(owner.done());
}

TEST(SerializedPortMisuse, DestroyingAPortNobodyServesRepliesItsQueuedMessagesECANCELED) {
  Contended c;
  QueuePort replies;
  ValueMsg sent;
  {
    Serialized port(std::ref(c));
    c.self = &port;
    c.first.value = 1;
    EXPECT_EQ(do_msg_blocking(port, c.first), 10);
    sent.value = 3;
    sent.set_reply_port(&replies);
    send_msg(port, sent);
    ASSERT_EQ(port.pending(), 2u);
    ASSERT_FALSE(c.waiter.done());
  }
  ASSERT_TRUE(c.waiter.done()) << "a parked sender must not wait forever";
  EXPECT_EQ(c.waiter.result(), -ECANCELED);
  ASSERT_TRUE(sent.done());
  EXPECT_EQ(sent.result(), -ECANCELED);
  EXPECT_EQ(replies.try_get(), &sent) << "replied to its reply port";
}

// ---- 3. Task::start() on a temporary ----------------------------------------------------------

template <class T>
concept Startable = requires(T&& t) {
  std::forward<T>(t).start();
};

static_assert(Startable<Task<void>&> && Startable<Task<int>&>, "a named Task starts");
static_assert(!Startable<Task<void>> && !Startable<Task<int>>,
              "make_task().start() would destroy the frame while it is parked");

TEST(TaskMisuse, StartOnATemporaryDoesNotCompile) {
  EXPECT_FALSE(Startable<Task<void>>);
  EXPECT_TRUE(Startable<Task<void>&>);
}

// ---- 4. a held task that never runs -----------------------------------------------------------

Task<int> forty_two() { co_return 42; }

TEST(GateMisuse, AHeldTaskDestroyedUnstartedLeavesTheGate) {
  Gate gate;
  {
    Task<int> never = gate.hold(forty_two());
    EXPECT_EQ(gate.inside(), 1) << "entered at hold(), before the task runs";
  }
  EXPECT_EQ(gate.inside(), 0);
  Watchdog wd("close_blocking() on a gate whose only holder never ran", kLimit);
  gate.close_blocking();
}

TEST(GateMisuse, AHeldTaskThatRunsLeavesWhenItEndsNotWhenDestroyed) {
  Gate gate;
  Task<int> t = gate.hold(forty_two());
  t.start();
  ASSERT_TRUE(t.done());
  EXPECT_EQ(gate.inside(), 0);
  EXPECT_EQ(t.result(), 42);
  Watchdog wd("close_blocking() once the held task ended", kLimit);
  gate.close_blocking();
}

TEST(GateMisuse, AHeldTaskWhoseSpawnThrewLeavesTheGate) {
  RuntimeOptions o;
  o.cores = 2;
  Runtime rt(o);
  Gate gate;
  EXPECT_THROW(rt.spawn(7, gate.hold(forty_two())), std::out_of_range);
  EXPECT_EQ(gate.inside(), 0);
  {
    Watchdog wd("close_blocking() after the spawn of the only holder threw", kLimit);
    gate.close_blocking();
  }
  rt.stop();
}

// ---- 5. sleeping off a core ------------------------------------------------------------------

Task<void> sleep_zero() { co_await sleep_for(absl::ZeroDuration()); }
Task<void> sleep_past() { co_await sleep_until(absl::InfinitePast()); }

TEST(TimerMisuse, ASleepWithNothingToWaitStillThrowsOffACore) {
  EXPECT_THROW(sync_wait(sleep_zero()), std::logic_error);
  EXPECT_THROW(sync_wait(sleep_past()), std::logic_error);
}

// ---- 6. do_msg_until: a deadline is -ETIMEDOUT --------------------------------------------------

// A server busy for an hour before it takes its first message: what is sent waits in its queue.
Task<void> busy_then_echo(LwThread& self) {
  co_await sleep_for(absl::Hours(1));
  while (Message* m = co_await wait_port(self.port())) reply_msg(*m, 1);
}

// Replies each request with `result`, after `delay`.
Task<void> slow_replier(LwThread& self, int result, absl::Duration delay) {
  while (Message* m = co_await wait_port(self.port())) {
    co_await sleep_for(delay);
    reply_msg(*m, result);
  }
}

Task<void> abort_later(Message& m, absl::Duration after) {
  co_await sleep_for(after);
  abort_msg(m);  // on the sender's core, as the contract asks
}

struct Outcomes {
  int expired = 0, expired_result = 0;
  int in_time = 0, own_cancel = 0, aborted = 0, held_past_deadline = 0;
};

Task<Outcomes> deadlines(ThreadPort& busy, ThreadPort& quick, ThreadPort& quick_cancel,
                         ThreadPort& slow) {
  Outcomes o;
  co_await sleep_for(absl::ZeroDuration());  // on a core: no wait, no throw
  ValueMsg m;
  o.expired = co_await do_msg_until(busy, m, absl::Now() + absl::Milliseconds(5));
  o.expired_result = m.result();
  o.in_time = co_await do_msg_until(quick, m, absl::Now() + absl::Seconds(10));
  o.own_cancel = co_await do_msg_until(quick_cancel, m, absl::Now() + absl::Seconds(10));
  // Someone on the sender's core aborts before the deadline: a cancel, not a timeout.
  Task<void> aborter = abort_later(m, absl::Milliseconds(5));
  aborter.start();
  o.aborted = co_await do_msg_until(busy, m, absl::Now() + absl::Seconds(10));
  co_await aborter.finished();
  // The holder took it and ignores the abort: its own result, after the deadline.
  o.held_past_deadline = co_await do_msg_until(slow, m, absl::Now() + absl::Milliseconds(2));
  co_return o;
}

TEST(DoMsgUntilMisuse, AnExpiredDeadlineIsETIMEDOUTAndOtherOutcomesStand) {
  RuntimeOptions opts;
  opts.cores = 2;
  Runtime rt(opts);
  auto busy = rt.spawn(1, busy_then_echo);
  auto quick =
      rt.spawn(1, [](LwThread& self) { return slow_replier(self, 8, absl::ZeroDuration()); });
  auto quick_cancel = rt.spawn(
      1, [](LwThread& self) { return slow_replier(self, -ECANCELED, absl::ZeroDuration()); });
  auto slow =
      rt.spawn(1, [](LwThread& self) { return slow_replier(self, 5, absl::Milliseconds(30)); });
  Outcomes o;
  {
    Watchdog wd("the do_msg_until calls on core 0", kLimit);
    o = rt.block_on(deadlines(busy.port(), quick.port(), quick_cancel.port(), slow.port()));
  }
  EXPECT_EQ(o.expired, -ETIMEDOUT) << "the deadline cancelled it in the busy server's queue";
  EXPECT_EQ(o.expired_result, -ETIMEDOUT) << "the message says the same";
  EXPECT_EQ(o.in_time, 8);
  EXPECT_EQ(o.own_cancel, -ECANCELED) << "the holder's own result, before the deadline";
  EXPECT_EQ(o.aborted, -ECANCELED) << "cancelled by the sender's core, not by the deadline";
  EXPECT_EQ(o.held_past_deadline, 5) << "the holder finished first";
  rt.stop(StopMode::kCancel);
}

}  // namespace
}  // namespace msgport
