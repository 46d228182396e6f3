// Ends and interleavings: what happens to messages when threads end, migrate, are cancelled or
// the runtime stops, and the per-core budget of direct resumptions. Every wait is bounded by a
// watchdog naming what it waits for.
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/migrate.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/timer.h>
#include <msgport/runtime/yield.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_support.h"
#include "tests/watchdog.h"

namespace msgport {
namespace {

using testing::ValueMsg;
using testing::Watchdog;
using namespace std::chrono_literals;

RuntimeOptions two_cores() {
  RuntimeOptions o;
  o.cores = 2;
  return o;
}

// Takes one request and returns without answering it.
Task<int> take_one_and_return(LwThread& self) {
  Message* m = co_await wait_port(self.port());
  co_return m != nullptr ? 1 : 0;
}

TEST(ThreadEnd, ARequestTakenAndNotAnsweredIsRepliedECANCELED) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, take_one_and_return);
  ValueMsg m;
  Watchdog wd("the reply to a request its server took and dropped");
  EXPECT_EQ(do_msg_blocking(server.port(), m), -ECANCELED);
  EXPECT_EQ(server.join(), 1);
  rt.stop();
}

// Parks a while (so requests queue), then returns with them still queued.
Task<int> sleep_then_return(LwThread&) {
  co_await sleep_for(absl::Milliseconds(20));
  co_return 0;
}

TEST(ThreadEnd, QueuedRequestsAreRepliedAndLaterSendsRefused) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, sleep_then_return);
  ValueMsg queued[3];
  for (auto& m : queued) send_msg(server.port(), m);
  Watchdog wd("the queued requests' replies and the refusal of later sends");
  EXPECT_EQ(server.join(), 0);
  for (auto& m : queued) EXPECT_EQ(wait_msg_blocking(m), -ECANCELED) << "queued when it ended";
  ValueMsg late;
  EXPECT_EQ(do_msg_blocking(server.port(), late), -ECANCELED) << "sent after it ended";
  // From a lightweight thread on the port's own core, and from the other core.
  auto send_from = [&](int core) {
    return rt
        .spawn(core,
               [&server](LwThread&) -> Task<int> {
                 ValueMsg m;
                 co_return co_await do_msg(server.port(), m);
               })
        .join();
  };
  EXPECT_EQ(send_from(1), -ECANCELED);
  EXPECT_EQ(send_from(0), -ECANCELED);
  rt.stop();
}

// A server that tells the client through on_abort, and answers -ECANCELED at once.
Task<int> abortable_server(LwThread& self) {
  int aborted = 0;
  Message* held = nullptr;
  self.port().on_abort([&](Message& m) {
    ++aborted;
    if (&m == held) {
      held = nullptr;
      reply_msg(m, -ECANCELED);
    }
  });
  held = co_await wait_port(self.port());
  for (int i = 0; i < 500 && held != nullptr; ++i) co_await sleep_for(absl::Milliseconds(1));
  if (held != nullptr) reply_msg(*held, 1);  // no abort came: answer normally
  co_return aborted;
}

TEST(Abort, AHolderLearnsThatARequestItTookWasAborted) {
  for (int core : {0, 1}) {  // the client on the server's core, then on the other one
    Runtime rt(two_cores());
    auto server = rt.spawn(1, abortable_server);
    auto client = rt.spawn(core, [&server](LwThread&) -> Task<int> {
      ValueMsg m;
      m.set_abortable(true);
      send_msg(server.port(), m);
      co_await sleep_for(absl::Milliseconds(5));  // the server has taken it by now
      abort_msg(m);
      co_return co_await wait_msg(m);
    });
    Watchdog wd("the aborted request's reply");
    EXPECT_EQ(client.join(), -ECANCELED) << "client on core " << core;
    EXPECT_EQ(server.join(), 1) << "the handler ran once";
    rt.stop();
  }
}

// A sender that migrates while its message is in flight on its old core's thread port, and a
// server that migrates between taking a request and replying: every reply finds its waiter.
Task<int> echo_server(LwThread& self, Core& elsewhere, bool migrate) {
  int served = 0;
  for (;;) {
    Message* m = co_await wait_port(self.port());
    if (m == nullptr) break;
    if (migrate && served % 2 == 0) {
      co_await migrate_to(elsewhere);
      reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
      co_await migrate_to(self.core());  // its port is served on its own core
    } else {
      reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
    }
    ++served;
  }
  co_return served;
}

Task<int> migrating_client(Runtime& rt, ThreadPort& to, int n) {
  int ok = 0;
  for (int i = 0; i < n; ++i) {
    ValueMsg m;
    m.value = i;
    send_msg(to, m);
    co_await migrate_to(rt.core(1 - this_core().id()));
    if (co_await wait_msg(m) == i + 1) ++ok;
  }
  co_return ok;
}

TEST(Migration, RepliesFindTheirWaiterWhereverEitherSideNowRuns) {
  Watchdog wd("replies to migrating senders from migrating servers");
  const int n = testing::stress(5000, 1000);
  for (bool server_migrates : {false, true}) {
    Runtime rt(two_cores());
    auto server = rt.spawn(0, [&rt, server_migrates](LwThread& self) {
      return echo_server(self, rt.core(1), server_migrates);
    });
    EXPECT_EQ(rt.spawn(0, migrating_client(rt, server.port(), n)).join(), n);
    rt.stop();
    EXPECT_EQ(server.join(), n);
  }
}

// The sender sends to its own core's thread port, migrates, and parks on the other core; the
// server replies only once the sender has parked there. The park must publish the waiter (with
// release, through the compare-exchange) since the reply comes from another core: under
// ThreadSanitizer a plain park is a reported race on the waiter, and without the race detector a
// reply racing the park would be lost.
Task<int> reply_once_parked(LwThread& self) {
  int served = 0;
  for (;;) {
    Message* m = co_await wait_port(self.port());
    if (m == nullptr) break;
    while (!(detail::MsgAccess::state(*m).load(std::memory_order_acquire) & detail::kParked)) {
      co_await yield_now();
    }
    reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
    ++served;
  }
  co_return served;
}

TEST(Migration, ASenderThatMigratedParksSoThatAReplyFromItsOldCoreFindsIt) {
  Watchdog wd("replies to senders parked after migrating");
  const int n = testing::stress(2000, 300);
  Runtime rt(two_cores());
  auto server = rt.spawn(0, reply_once_parked);
  EXPECT_EQ(rt.spawn(0, migrating_client(rt, server.port(), n)).join(), n);
  rt.stop();
  EXPECT_EQ(server.join(), n);
}

// A client and a server on one core answering each other never return to the core's loop by
// themselves; the budget of direct resumptions makes the core serve its timers and inboxes.
TEST(Fairness, ATimerAndAnotherCoreAreServedDuringASameCorePingPong) {
  Runtime rt(two_cores());
  std::atomic<bool> stop{false};
  auto server = rt.spawn(0, [](LwThread& self) -> Task<long> {
    long n = 0;
    for (;;) {
      Message* m = co_await wait_port(self.port());
      if (m == nullptr) break;
      reply_msg(*m, 0);
      ++n;
    }
    co_return n;
  });
  auto client = rt.spawn(0, [&stop, &server](LwThread&) -> Task<long> {
    ValueMsg m;
    long n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      co_await do_msg(server.port(), m);
      ++n;
    }
    co_return n;
  });
  Watchdog wd("a timer and a cross-core message on a core busy with a ping-pong");
  auto sleeper = rt.spawn(0, []() -> Task<int> {
    co_await sleep_for(absl::Milliseconds(1));
    co_return 1;
  }());
  EXPECT_EQ(sleeper.join(), 1) << "the timer fired";
  ValueMsg from_other;
  auto other = rt.spawn(1, [&server, &from_other](LwThread&) -> Task<int> {
    co_return co_await do_msg(server.port(), from_other);
  });
  EXPECT_EQ(other.join(), 0) << "the other core's message was served";
  stop.store(true);
  EXPECT_GT(client.join(), 0);
  rt.stop();
}

TEST(Stop, JoiningAThreadThatStopCancelledThrowsThreadCancelled) {
  Runtime rt(two_cores());
  auto sleeper = rt.spawn(1, []() -> Task<int> {
    co_await sleep_for(absl::Hours(1));
    co_return 1;
  }());
  rt.stop(StopMode::kCancel);
  Watchdog wd("join of a cancelled thread");
  EXPECT_THROW(sleeper.join(), ThreadCancelled);
}

TEST(Stop, DrainEndsAfterItsGraceWhenAThreadServesAPortNobodyClosed) {
  auto work = [](Message& m) { return static_cast<ValueMsg&>(m).value; };
  SerializedPort<decltype(work)> port(work);
  RuntimeOptions o = two_cores();
  o.stop_grace = absl::Milliseconds(100);
  Runtime rt(o);
  auto server = rt.spawn(1, port.serve());
  ValueMsg m;
  m.value = 3;
  EXPECT_EQ(do_msg_blocking(port, m), 3);
  Watchdog wd("stop(kDrain) with a port nobody closed");
  ::testing::internal::CaptureStderr();
  rt.stop(StopMode::kDrain);
  std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("still running"), std::string::npos) << said;
  EXPECT_THROW(server.join(), ThreadCancelled);
  ValueMsg late;
  late.value = 4;
  // The serializer is free: the port still answers inline; nothing dangles from the frame.
  EXPECT_EQ(do_msg_blocking(port, late), 4);
}

// A coroutine that never suspends keeps its core from answering stop: stop says so after the
// grace period (naming the core), and finishes once the core is back.
TEST(Stop, ACoreThatNeverGetsBackToItsLoopIsNamedWhileStopWaits) {
  RuntimeOptions o = two_cores();
  o.stop_grace = absl::Milliseconds(50);
  Runtime rt(o);
  std::atomic<bool> release{false}, spinning{false};
  auto spinner = rt.spawn(1, [&](LwThread&) -> Task<int> {
    spinning.store(true);
    while (!release.load()) std::this_thread::yield();  // never suspends
    co_return 1;
  });
  while (!spinning.load()) std::this_thread::yield();
  Watchdog wd("stop while core 1 spins");
  ::testing::internal::CaptureStderr();
  std::thread releaser([&] {
    std::this_thread::sleep_for(200ms);
    release.store(true);
  });
  rt.stop(StopMode::kDrain);
  releaser.join();
  std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("waiting for core(s) 1 to get back"), std::string::npos) << said;
  EXPECT_EQ(spinner.join(), 1);
}

TEST(Stop, SpawnRacingStopEitherRunsOrThrows) {
  for (int round = 0; round < testing::stress(50, 10); ++round) {
    Runtime rt(two_cores());
    std::atomic<int> ran{0}, refused{0};
    std::thread spawner([&] {
      for (int i = 0; i < 200; ++i) {
        try {
          rt.spawn(i % 2, [&ran](LwThread&) -> Task<void> {
              ran.fetch_add(1);
              co_return;
            }).detach();
        } catch (const std::logic_error&) {
          refused.fetch_add(1);
        }
      }
    });
    Watchdog wd("stop(kDrain) racing spawns");
    rt.stop(StopMode::kDrain);
    spawner.join();
    EXPECT_EQ(ran.load() + refused.load(), 200) << "every spawn ran (drained) or threw";
  }
}

TEST(JoinHandle, ASecondAwaitThrowsLogicError) {
  Runtime rt(two_cores());
  auto worker = rt.spawn(1, []() -> Task<int> { co_return 5; }());
  auto joiner = rt.spawn(0, [&worker](LwThread&) -> Task<int> {
    int first = co_await worker;
    try {
      co_await worker;
    } catch (const std::logic_error&) {
      co_return first;
    }
    co_return -1;
  });
  Watchdog wd("the joiner");
  EXPECT_EQ(joiner.join(), 5);
  rt.stop();
}

TEST(Runtime, BlockOnFromACoreThrows) {
  Runtime rt(two_cores());
  auto t = rt.spawn(0, [&rt](LwThread&) -> Task<int> {
    try {
      rt.block_on([]() -> Task<int> { co_return 1; }());
    } catch (const std::logic_error&) {
      co_return 1;
    }
    co_return 0;
  });
  Watchdog wd("block_on from a core");
  EXPECT_EQ(t.join(), 1);
  rt.stop();
}

TEST(Runtime, SpawnKeepsACapturingLambdaAliveForTheThread) {
  Runtime rt(two_cores());
  std::vector<int> data{1, 2, 3};
  auto h = rt.spawn(1, [copy = data](LwThread&) -> Task<int> {
    co_await sleep_for(absl::Milliseconds(2));  // the spawn call's temporaries are gone by now
    int sum = 0;
    for (int v : copy) sum += v;
    co_return sum;
  });
  Watchdog wd("the thread using its lambda's captures");
  EXPECT_EQ(h.join(), 6);
  rt.stop();
}

// ---- regressions from a review ----------------------------------------------------------

void spin_until(const std::atomic<bool>& f) {
  while (!f.load(std::memory_order_acquire)) std::this_thread::yield();
}

// A message is aborted from core 1 while core 0's server holds it; the server replies before the
// abort entry reaches core 0, and the message at the same address is sent again to the same port
// from core 0 itself: either a new message built there (`rebuild`: a loop-local message, a
// recycled frame) or the same object. The stale abort entry, still in core 1's ring, must not
// cancel that send: send numbers are unique in the process, not per message object. Returns the
// second send's result (7 when left alone).
int stale_abort_then_send_again(bool rebuild) {
  Watchdog wd("a stale abort against the next send at the same address");
  Runtime rt(two_cores());
  alignas(ValueMsg) static unsigned char buf[sizeof(ValueMsg)];
  std::atomic<bool> taken{false}, aborted{false}, rebuilt{false}, resent{false};
  auto server = rt.spawn(0, [&](LwThread& self) -> Task<int> {
    Message* m = co_await wait_port(self.port());
    taken.store(true, std::memory_order_release);
    spin_until(aborted);  // the abort entry is published in ring 1->0, not yet drained
    reply_msg(*m, 1);     // the sender does not park: no entry needed to tell it
    spin_until(rebuilt);
    auto* again = reinterpret_cast<ValueMsg*>(buf);
    send_msg(self.port(), *again);  // on the owner's core: queued (this thread is busy)
    resent.store(true, std::memory_order_release);
    co_await sleep_for(absl::Milliseconds(20));  // the next turn drains ring 1->0: the abort
    Message* next = co_await wait_port(self.port());
    if (next != nullptr) reply_msg(*next, 7);
    co_return next != nullptr ? 1 : 0;
  });
  auto client = rt.spawn(1, [&](LwThread&) -> Task<int> {
    auto* m = new (buf) ValueMsg;
    m->set_abortable(true);
    send_msg(server.port(), *m);
    co_await yield_now();  // publish the send
    spin_until(taken);
    abort_msg(*m);
    co_await yield_now();  // publish the abort
    aborted.store(true, std::memory_order_release);
    while (!check_msg(*m)) std::this_thread::yield();  // the reply, without parking
    int first = m->result();
    if (rebuild) {
      m->~ValueMsg();
      new (buf) ValueMsg;  // a new message, never aborted, at the same address
    } else {
      m->set_abortable(false);  // the same object, sent again
    }
    rebuilt.store(true, std::memory_order_release);
    co_return first;
  });
  EXPECT_EQ(client.join(), 1);
  spin_until(resent);
  auto* again = reinterpret_cast<ValueMsg*>(buf);
  while (!check_msg(*again)) std::this_thread::yield();
  if (rebuild) {
    EXPECT_FALSE(again->abort_requested());
  }
  int r = again->result();
  rt.stop(StopMode::kCancel);
  return r;
}

TEST(StaleAbort, ItLeavesAFreshMessageAtTheSameAddressAlone) {
  EXPECT_EQ(stale_abort_then_send_again(true), 7) << "cancelled by a stale abort";
}

TEST(StaleAbort, ItLeavesTheSameMessageSentAgainAlone) {
  EXPECT_EQ(stale_abort_then_send_again(false), 7) << "cancelled by a stale abort";
}

// A thread takes a request sent from its own core (so the message is marked held locally) and
// never answers; the sender did not park on it (send_msg, then sleeps). stop(kCancel) ends the
// ports in destroy_left, on the stopping thread, after the cores are sealed: reply_msg there sees
// "held locally on core 0, not parked" and posts the reply to core 0 (Context::post_reply); the
// sealed core must finish it on the caller's thread without posting it back (it used to recurse
// until the stack overflowed).
TEST(Stop, CancelAnswersATakenRequestHeldLocallyWithoutRecursing) {
  Watchdog wd("stop(kCancel) with a taken request held locally");
  Runtime rt(two_cores());
  std::atomic<bool> took{false};
  auto server = rt.spawn(0, [&took](LwThread& self) -> Task<int> {
    Message* m = co_await wait_port(self.port());
    took.store(true, std::memory_order_release);
    co_await sleep_for(absl::Hours(1));  // never answers
    co_return m != nullptr ? 1 : 0;
  });
  ValueMsg* out = nullptr;
  auto client = rt.spawn(0, [&server, &out](LwThread&) -> Task<int> {
    ValueMsg m;  // lives in this frame, which stop destroys after the ports are ended
    out = &m;
    send_msg(server.port(), m);  // from the port's own core: held locally, not parked
    co_await sleep_for(absl::Hours(1));
    co_return 0;
  });
  spin_until(took);
  rt.stop(StopMode::kCancel);
  EXPECT_THROW(server.join(), ThreadCancelled);
  EXPECT_THROW(client.join(), ThreadCancelled);
}

// A server takes two requests, migrates (as lifetimes_test's echo_server does) and replies the
// first on core 1, while an abort for the second, arriving at core 0 meanwhile, walks core 0's
// taken list there (ThreadPort::abort_queued -> taken_at). The reply is finished on core 0, where
// the list lives, so the two never touch it at once (under ThreadSanitizer this was a race).
TEST(Migration, AMigratedServersReplyIsFinishedOnTheCoreOfItsTakenList) {
  Watchdog wd("a migrated server replying while its home core walks the taken list");
  Runtime rt(two_cores());
  std::atomic<int> phase{0};
  std::atomic<bool> abort_seen{false};
  auto server = rt.spawn(0, [&rt, &phase, &abort_seen](LwThread& self) -> Task<int> {
    self.port().on_abort(
        [&abort_seen](Message&) { abort_seen.store(true, std::memory_order_relaxed); });
    Message* a = co_await wait_port(self.port());
    Message* b = co_await wait_port(self.port());
    co_await migrate_to(rt.core(1));
    phase.store(1, std::memory_order_relaxed);
    while (phase.load(std::memory_order_relaxed) != 2) std::this_thread::yield();
    reply_msg(*a, 1);  // unlinks a from core 0's taken list, here on core 1
    while (!abort_seen.load(std::memory_order_relaxed)) std::this_thread::yield();
    reply_msg(*b, 2);
    co_await migrate_to(self.core());
    co_return 0;
  });
  ValueMsg a, b;
  b.set_abortable(true);
  send_msg(server.port(), a);
  send_msg(server.port(), b);
  while (phase.load(std::memory_order_relaxed) != 1) std::this_thread::yield();
  abort_msg(b);                               // core 0 walks the taken list (on_abort is set) ...
  phase.store(2, std::memory_order_relaxed);  // ... while core 1 unlinks a from it
  EXPECT_EQ(wait_msg_blocking(a), 1);
  EXPECT_EQ(wait_msg_blocking(b), 2);
  EXPECT_EQ(server.join(), 0);
  rt.stop();
}

}  // namespace
}  // namespace msgport
