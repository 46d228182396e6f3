// Interleavings: for each step of the runtime, what another core may do in between — reply,
// abort, forward, migrate, end its thread, stop the runtime, free the message — and the lifetimes
// that must hold across it (shared/DESIGN.md, "Lifetimes and interleavings").
//
// Each test forces one interleaving, with barriers (a coroutine that spins keeps its core from
// looking at its inboxes until the test lets go) or with many randomized rounds across the two
// cores. A test fails by a wrong value, a sanitizer report, or a watchdog naming the wait that
// never ended: no wait here is unbounded.
#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/migrate.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/timer.h>
#include <msgport/runtime/yield.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_support.h"
#include "tests/watchdog.h"

#if defined(__SANITIZE_ADDRESS__)
// A coroutine that reads a dead caller's stack (a capture of a destroyed closure) is reported.
extern "C" const char* __asan_default_options() { return "detect_stack_use_after_return=1"; }
#endif

namespace msgport {
namespace {

using testing::ValueMsg;
using testing::Watchdog;

// Every wait that could hang is bounded by this; generous, so that sanitizers are not caught.
constexpr std::chrono::seconds kLimit{20};

RuntimeOptions two_cores() {
  RuntimeOptions o;
  o.cores = 2;
  return o;
}

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Keeps the calling core busy (it handles no inbox meanwhile) until the flag is set.
void spin_until(const std::atomic<bool>& flag) {
  while (!flag.load(std::memory_order_acquire)) relax();
}

// For plain threads: waits for the flag without holding a CPU the cores need.
void yield_until(const std::atomic<bool>& flag) {
  while (!flag.load(std::memory_order_acquire)) std::this_thread::yield();
}

void burn(unsigned n) {
  for (unsigned i = 0; i < n; ++i) relax();
}

void stop_within(Runtime& rt, StopMode mode, const char* what) {
  Watchdog wd(what, kLimit);
  rt.stop(mode);
}

template <class T>
T join_within(JoinHandle<T>& h, const char* what) {
  Watchdog wd(what, kLimit);
  return h.join();
}

// Replies value + 1 to every request, until its port closes; returns how many it served.
Task<int> echo_plus_one(LwThread& self) {
  int served = 0;
  while (Message* m = co_await wait_port(self.port())) {
    reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
    ++served;
  }
  co_return served;
}

// Never looks at its port: what is sent to it stays queued.
Task<void> never_serves(LwThread&) { co_await sleep_for(absl::Hours(1)); }

// Waits on its port until the port closes; serves nothing (a drain ends it).
Task<void> parked_server(LwThread& self) {
  while (Message* m = co_await wait_port(self.port())) reply_msg(*m, 0);
}

Task<int> answer() { co_return 42; }

// What a randomized client saw: how many results were wrong, and the first wrong one.
struct Tally {
  long rounds = 0;
  long wrong = 0;
  long cancelled = 0;
  long threw = 0;
  long first_wrong_round = -1;
  int first_wrong = 0;
  void bad(long round, int r) {
    if (wrong++ == 0) {
      first_wrong_round = round;
      first_wrong = r;
    }
  }
};

// =================================================================================================
// 1. Cross-core aborts. An abort of a message held on another core travels as a ring entry naming
//    the message and the port. It names one *send*: when it arrives, the message may have been
//    replied, freed, or sent again; the port's thread may have ended.
// =================================================================================================

// Between requests, busy for a random number of turns: the next request queues.
Task<void> busy_server(LwThread& self, unsigned seed) {
  std::minstd_rand rng(seed);
  while (Message* m = co_await wait_port(self.port())) {
    reply_msg(*m, 1);
    for (unsigned n = rng() % 4; n > 0; --n) co_await yield_now();
  }
}

// Sends m, aborts it (sometimes after the request crossed, sometimes after its reply came back),
// waits for the reply, then at once sends the same m again, without an abort.
Task<Tally> abort_then_resend(ThreadPort& server, long n, unsigned seed) {
  std::minstd_rand rng(seed);
  Tally t;
  ValueMsg m;
  m.set_abortable(true);
  for (long i = 0; i < n; ++i, ++t.rounds) {
    send_msg(server, m);
    for (unsigned k = rng() % 3; k > 0; --k) co_await yield_now();
    abort_msg(m);
    int r = co_await wait_msg(m);
    if (r == -ECANCELED) {
      ++t.cancelled;
    } else if (r != 1) {
      t.bad(i, r);
    }
    send_msg(server, m);  // the same message, right after its reply: nobody aborts this send
    r = co_await wait_msg(m);
    if (r != 1) t.bad(i, r);
  }
  co_return t;
}

TEST(CrossCoreAbort, AStaleAbortDoesNotCancelTheNextSendOfTheSameMessage) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, [](LwThread& self) { return busy_server(self, 11); });
  const long n = testing::stress(20'000, 2'000);
  auto client = rt.spawn(0, abort_then_resend(server.port(), n, 5));
  Tally t = join_within(client, "the client aborting and resending across cores");
  EXPECT_EQ(t.rounds, n);
  EXPECT_EQ(t.wrong, 0) << "round " << t.first_wrong_round << ": result " << t.first_wrong
                        << " (a send nobody aborted was cancelled by the previous send's abort)";
  EXPECT_GT(t.cancelled, 0) << "some aborts did reach a queued message";
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// The server sleeps between requests, so every request waits in its queue and every abort finds
// it there; the resend that follows must be served.
Task<void> sleepy_server(LwThread& self) {
  for (;;) {
    co_await sleep_for(absl::Microseconds(300));
    Message* m = co_await wait_port(self.port());
    if (m == nullptr) co_return;
    reply_msg(*m, 1);
  }
}

TEST(CrossCoreAbort, AbortOfAQueuedMessageThenAResendToASleepingServer) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, sleepy_server);
  auto client = rt.spawn(0, abort_then_resend(server.port(), testing::stress(300, 100), 9));
  Tally t = join_within(client, "the client aborting and resending to a sleeping server");
  EXPECT_EQ(t.wrong, 0) << "round " << t.first_wrong_round << ": result " << t.first_wrong;
  EXPECT_GT(t.cancelled, 0);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// Barriers between a sender, a server that holds its core, and a forwarder.
struct Gates {
  std::atomic<bool> took{false};        // the server has the message
  std::atomic<bool> abort_sent{false};  // the sender called abort_msg
  std::atomic<bool> resent{false};      // the resend is in the server core's inbox
  std::atomic<bool> freed{false};       // the sender deleted the message
};

// Takes the first request and holds its core (no inbox is read) until the abort has been sent;
// replies 1, so the reply overtakes the abort; keeps holding the core until the resend has
// arrived by another route; then, busy for a while so the resend queues, serves the rest with 2.
Task<void> reply_before_the_abort_arrives(LwThread& self, Gates& g) {
  Message* m = co_await wait_port(self.port());
  if (m == nullptr) co_return;
  g.took.store(true, std::memory_order_release);
  spin_until(g.abort_sent);
  reply_msg(*m, 1);
  spin_until(g.resent);
  co_await sleep_for(absl::Milliseconds(2));
  while ((m = co_await wait_port(self.port())) != nullptr) reply_msg(*m, 2);
}

// Forwards every request to `to`, and says so once the forwarded send has left this core.
Task<void> forward_and_tell(LwThread& self, ThreadPort& to, Gates& g) {
  while (Message* m = co_await wait_port(self.port())) {
    forward_msg(to, *m);
    co_await yield_now();  // the core publishes what it sent before running this again
    g.resent.store(true, std::memory_order_release);
  }
}

// The abort leaves a plain thread (the core's inbox from threads); the resend reaches the same
// core through the ring from core 0, which the core reads first. The stale abort must not cancel
// the resend.
TEST(CrossCoreAbort, AStaleAbortDoesNotCancelAResendThatCameByAnotherRoute) {
  Runtime rt(two_cores());
  Gates g;
  auto server =
      rt.spawn(1, [&g](LwThread& self) { return reply_before_the_abort_arrives(self, g); });
  auto fwd = rt.spawn(0, [&](LwThread& self) { return forward_and_tell(self, server.port(), g); });
  ValueMsg m;
  m.set_abortable(true);
  send_msg(server.port(), m);
  {
    Watchdog wd("the server to take the first send", kLimit);
    yield_until(g.took);
  }
  abort_msg(m);
  g.abort_sent.store(true, std::memory_order_release);
  int first;
  {
    Watchdog wd("the reply that overtook the abort", kLimit);
    first = wait_msg_blocking(m);
  }
  EXPECT_EQ(first, 1) << "the server replied before the abort reached its core";
  send_msg(fwd.port(), m);  // the same message again, this time by way of core 0
  int second;
  {
    Watchdog wd("the reply to the resend", kLimit);
    second = wait_msg_blocking(m);
  }
  EXPECT_EQ(second, 2) << "the resend was cancelled by the abort of the send before it";
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// The same with lightweight threads only, on three cores: the sender on core 1 aborts (ring 1->2),
// the resend goes through a forwarder on core 0 (ring 0->2, which core 2 reads first).
Task<int> abort_poll_resend(ThreadPort& server, ThreadPort& via, Gates& g) {
  ValueMsg m;
  m.set_abortable(true);
  send_msg(server, m);
  while (!g.took.load(std::memory_order_acquire)) co_await yield_now();
  abort_msg(m);
  g.abort_sent.store(true, std::memory_order_release);
  // Poll rather than park: the server's core holds on to what it sends until it lets go.
  while (!check_msg(m)) co_await yield_now();
  int first = co_await wait_msg(m);
  if (first != 1) co_return 100 + first;
  send_msg(via, m);
  co_return co_await wait_msg(m);
}

TEST(CrossCoreAbort, AStaleAbortDoesNotCancelAResendThroughAThirdCore) {
  RuntimeOptions o = two_cores();
  o.cores = 3;
  Runtime rt(o);
  Gates g;
  auto server =
      rt.spawn(2, [&g](LwThread& self) { return reply_before_the_abort_arrives(self, g); });
  auto fwd = rt.spawn(0, [&](LwThread& self) { return forward_and_tell(self, server.port(), g); });
  auto client = rt.spawn(1, abort_poll_resend(server.port(), fwd.port(), g));
  EXPECT_EQ(join_within(client, "the client on core 1"), 2)
      << "2: the resend was served; 1xx: the first send's result was not 1; -125: the resend "
         "was cancelled by the stale abort";
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// Holds its core from the moment it takes the request until the sender has freed the message:
// the abort entry the sender sent meanwhile waits in this core's inbox, and is handled after.
Task<void> reply_then_wait_for_free(LwThread& self, Gates& g) {
  while (Message* m = co_await wait_port(self.port())) {
    g.took.store(true, std::memory_order_release);
    spin_until(g.abort_sent);
    reply_msg(*m, 1);
    spin_until(g.freed);
  }
}

Task<int> abort_then_free(ThreadPort& server, Gates& g) {
  auto* m = new ValueMsg;
  m->set_abortable(true);
  send_msg(server, *m);
  while (!g.took.load(std::memory_order_acquire)) co_await yield_now();
  abort_msg(*m);
  g.abort_sent.store(true, std::memory_order_release);
  while (!check_msg(*m)) co_await yield_now();  // polled: the server's core is held
  int r = co_await wait_msg(*m);
  delete m;  // replied: the message is the sender's again, to free
  g.freed.store(true, std::memory_order_release);
  co_return r;
}

TEST(CrossCoreAbort, TheSenderMayFreeTheMessageOnceRepliedWhileItsAbortIsInFlight) {
  Runtime rt(two_cores());
  Gates g;
  auto server = rt.spawn(1, [&g](LwThread& self) { return reply_then_wait_for_free(self, g); });
  auto client = rt.spawn(0, abort_then_free(server.port(), g));
  EXPECT_EQ(join_within(client, "the client that frees its message"), 1);
  // The server's core now handles the abort entry naming the freed message (ASan: use after free).
  ValueMsg probe;
  {
    Watchdog wd("a round trip after the stale abort", kLimit);
    EXPECT_EQ(do_msg_blocking(server.port(), probe), 1);
  }
  g.freed.store(true);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// Randomized: deadlines that expire about when the reply comes back; the message is on the heap
// and freed as soon as do_msg_until returns. An abort sent by the deadline may still be in flight.
Task<void> jittery_server(LwThread& self, unsigned seed) {
  std::minstd_rand rng(seed);
  while (Message* m = co_await wait_port(self.port())) {
    burn(rng() % 256);
    reply_msg(*m, 1);
  }
}

Task<Tally> deadlines_then_free(ThreadPort& server, long n, unsigned seed) {
  std::minstd_rand rng(seed);
  Tally t;
  for (long i = 0; i < n; ++i, ++t.rounds) {
    auto m = std::make_unique<ValueMsg>();
    int r = co_await do_msg_until(server, *m, absl::Now() + absl::Nanoseconds(rng() % 20'000));
    if (r == -ECANCELED || r == -ETIMEDOUT) {
      ++t.cancelled;
    } else if (r != 1) {
      t.bad(i, r);
    }
    m.reset();
  }
  co_return t;
}

TEST(CrossCoreAbort, MessagesFreedRightAfterADeadlineRacedTheirReply) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, [](LwThread& self) { return jittery_server(self, 3); });
  const long n = testing::on_one_cpu(10'000, testing::stress(50'000, 10'000));
  auto client = rt.spawn(0, deadlines_then_free(server.port(), n, 17));
  Tally t = join_within(client, "the client racing deadlines against replies");
  EXPECT_EQ(t.wrong, 0) << "round " << t.first_wrong_round << ": result " << t.first_wrong;
  std::printf("deadline won %ld of %ld rounds\n", t.cancelled, t.rounds);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// The server replies and its thread ends at once; its handle is detached, so the thread's state
// (its port among it) is freed. The abort entry for the message it held arrives afterwards.
Task<void> take_reply_and_end(LwThread& self, Gates& g) {
  Message* m = co_await wait_port(self.port());
  if (m == nullptr) co_return;
  g.took.store(true, std::memory_order_release);
  spin_until(g.abort_sent);
  reply_msg(*m, 1);
}

Task<int> send_then_abort(ThreadPort& server, Gates& g) {
  ValueMsg m;
  m.set_abortable(true);
  send_msg(server, m);
  while (!g.took.load(std::memory_order_acquire)) co_await yield_now();
  abort_msg(m);
  g.abort_sent.store(true, std::memory_order_release);
  co_return co_await wait_msg(m);
}

TEST(CrossCoreAbort, AnAbortThatArrivesAfterTheHoldingThreadEnded) {
  Runtime rt(two_cores());
  Gates g;
  auto server = rt.spawn(1, [&g](LwThread& self) { return take_reply_and_end(self, g); });
  ThreadPort& port = server.port();
  server.detach();  // the thread's state goes when the thread ends
  auto client = rt.spawn(0, send_then_abort(port, g));
  EXPECT_EQ(join_within(client, "the reply from the thread that then ended"), 1);
  // Core 1 handles the abort entry naming the ended thread's port (ASan: use after free).
  auto after = rt.spawn(1, answer());
  EXPECT_EQ(join_within(after, "a thread on core 1 after the stale abort"), 42);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// Neighbour: a send (not an abort) still in the ring when the detached target thread ends. It must
// be refused -ECANCELED, not begun at a freed port.
Task<void> end_when_told(LwThread&, std::atomic<bool>& started, std::atomic<bool>& sent) {
  started.store(true, std::memory_order_release);
  spin_until(sent);  // holds core 1: the send waits in its inbox until this thread has ended
  co_return;
}

Task<int> send_to_ending_thread(ThreadPort& port, std::atomic<bool>& sent) {
  ValueMsg m;
  send_msg(port, m);
  sent.store(true, std::memory_order_release);
  co_return co_await wait_msg(m);
}

TEST(CrossCoreAbort, ASendInFlightToAThreadThatEndsIsRefused) {
  Runtime rt(two_cores());
  std::atomic<bool> started{false};
  std::atomic<bool> sent{false};
  auto target = rt.spawn(1, [&](LwThread& self) { return end_when_told(self, started, sent); });
  ThreadPort& port = target.port();
  target.detach();
  {
    Watchdog wd("the target thread to start", kLimit);
    yield_until(started);  // so the send below reaches core 1 while the thread runs
  }
  auto client = rt.spawn(0, send_to_ending_thread(port, sent));
  EXPECT_EQ(join_within(client, "the reply to a send whose target thread ended"), -ECANCELED);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// =================================================================================================
// 2. forward_msg while the sender parks. The sender parks with a compare-exchange on the message's
//    state word; an agent on another core forwarding the message writes that word at the same
//    time. A lost kParked is a lost wake-up: the sender never resumes.
// =================================================================================================

// Core 1: takes each message off a QueuePort the moment it is there (the sender may still be on
// its way to parking) and forwards it to a thread port on core 0.
Task<void> relay(QueuePort& from, ThreadPort& to, std::atomic<bool>& stop, unsigned seed) {
  std::minstd_rand rng(seed);
  for (;;) {
    Message* m = from.try_get();
    if (m == nullptr) {
      if (stop.load(std::memory_order_acquire)) co_return;
      relax();
      continue;
    }
    burn(rng() % 64);
    forward_msg(to, *m);
    co_await yield_now();  // the core publishes the forwarded send
  }
}

// Core 0: do_msg on the QueuePort, then a random pause before parking.
Task<Tally> park_while_relayed(QueuePort& q, long n, unsigned seed) {
  std::minstd_rand rng(seed);
  Tally t;
  ValueMsg m;
  for (long i = 0; i < n; ++i, ++t.rounds) {
    m.value = static_cast<int>(i % 1000);
    DoMsg pending = do_msg(q, m);
    burn(rng() % 192);
    int r = co_await pending;
    if (r != m.value + 1) t.bad(i, r);
  }
  co_return t;
}

TEST(ForwardWhileParking, AnAgentOnAnotherCoreForwardsWhileTheSenderParks) {
  Runtime rt(two_cores());
  QueuePort q;
  std::atomic<bool> stop{false};
  auto echo = rt.spawn(0, echo_plus_one);
  auto relayer = rt.spawn(1, relay(q, echo.port(), stop, 21));
  const long n = testing::on_one_cpu(2'000, testing::stress(200'000, 20'000));
  auto sender = rt.spawn(0, park_while_relayed(q, n, 4));
  Tally t = join_within(sender, "the sender parked on a message forwarded from another core");
  stop.store(true);
  join_within(relayer, "the relay");
  EXPECT_EQ(t.rounds, n);
  EXPECT_EQ(t.wrong, 0) << "round " << t.first_wrong_round << ": result " << t.first_wrong;
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// Forwards every request it takes to `to` (a port on another core).
Task<void> forward_all(LwThread& self, ThreadPort& to) {
  while (Message* m = co_await wait_port(self.port())) forward_msg(to, *m);
}

// A plain-thread sender: do_msg_blocking, or send_msg then a random pause then wait_msg_blocking,
// to a thread port on core 1 whose thread forwards to core 0.
TEST(ForwardWhileParking, APlainThreadParksWhileCoreOneForwardsToCoreZero) {
  Runtime rt(two_cores());
  auto echo = rt.spawn(0, echo_plus_one);
  auto fwd = rt.spawn(1, [&](LwThread& self) { return forward_all(self, echo.port()); });
  const long n = testing::on_one_cpu(10'000, testing::stress(40'000, 4'000));
  std::minstd_rand rng(8);
  Tally t;
  {
    Watchdog wd("a plain thread parked on a message forwarded between cores", kLimit);
    ValueMsg m;
    for (long i = 0; i < n; ++i, ++t.rounds) {
      m.value = static_cast<int>(i % 1000);
      int r;
      if (i % 2) {
        r = do_msg_blocking(fwd.port(), m);
      } else {
        send_msg(fwd.port(), m);
        burn(rng() % 1024);
        r = wait_msg_blocking(m);
      }
      if (r != m.value + 1) t.bad(i, r);
    }
  }
  EXPECT_EQ(t.wrong, 0) << "round " << t.first_wrong_round << ": result " << t.first_wrong;
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// A lightweight sender that parks late: send_msg, let the core run (the request crosses and is
// forwarded back meanwhile), then wait_msg after a random pause.
Task<Tally> send_yield_wait(ThreadPort& to, long n, unsigned seed) {
  std::minstd_rand rng(seed);
  Tally t;
  ValueMsg m;
  for (long i = 0; i < n; ++i, ++t.rounds) {
    m.value = static_cast<int>(i % 1000);
    send_msg(to, m);
    co_await yield_now();
    burn(rng() % 256);
    int r = co_await wait_msg(m);
    if (r != m.value + 1) t.bad(i, r);
  }
  co_return t;
}

TEST(ForwardWhileParking, ALightweightSenderParksWhileItsMessageIsForwardedBack) {
  Runtime rt(two_cores());
  auto echo = rt.spawn(0, echo_plus_one);
  auto fwd = rt.spawn(1, [&](LwThread& self) { return forward_all(self, echo.port()); });
  const long n = testing::on_one_cpu(5'000, testing::stress(100'000, 10'000));
  auto sender = rt.spawn(0, send_yield_wait(fwd.port(), n, 6));
  Tally t = join_within(sender, "the sender parked late on a message forwarded back to its core");
  EXPECT_EQ(t.wrong, 0) << "round " << t.first_wrong_round << ": result " << t.first_wrong;
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// =================================================================================================
// 3. Migration with a message in flight. Acceptable: it works, or the call that cannot be
//    supported throws std::logic_error. Never a hang, never a data race.
// =================================================================================================

// Replies value + 1 after a random pause, so the reply races the sender's park elsewhere.
Task<void> jittery_echo(LwThread& self, unsigned seed) {
  std::minstd_rand rng(seed);
  while (Message* m = co_await wait_port(self.port())) {
    burn(rng() % 512);
    reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
  }
}

// Sends to a port on its own core (core 0), moves to core 1, waits there for the reply.
template <class P>
Task<Tally> send_migrate_wait(Runtime& rt, P& port, long n) {
  Tally t;
  for (long i = 0; i < n; ++i, ++t.rounds) {
    ValueMsg m;
    m.value = static_cast<int>(i % 1000);
    send_msg(port, m);
    bool moved = true;
    try {
      co_await migrate_to(rt.core(1));
    } catch (const std::logic_error&) {
      moved = false;  // migration refused while a message is in flight: acceptable
      ++t.threw;
    }
    int r = 0;
    bool waited = false;
    if (moved) {
      try {
        r = co_await wait_msg(m);
        waited = true;
      } catch (const std::logic_error&) {
        ++t.threw;  // waiting away from the port's core refused: acceptable
      }
      co_await migrate_to(rt.core(0));
    }
    if (!waited) r = co_await wait_msg(m);
    if (r != m.value + 1) t.bad(i, r);
  }
  co_return t;
}

TEST(Migrate, ASenderMovesToAnotherCoreWhileItsLocalSendIsInFlight) {
  Runtime rt(two_cores());
  auto server = rt.spawn(0, [](LwThread& self) { return jittery_echo(self, 2); });
  const long n = testing::stress(20'000, 2'000);
  auto client = rt.spawn(0, send_migrate_wait(rt, server.port(), n));
  Tally t = join_within(client, "the reply to a sender that moved to core 1");
  EXPECT_EQ(t.wrong, 0) << "round " << t.first_wrong_round << ": result " << t.first_wrong;
  std::printf("logic_error thrown in %ld of %ld rounds\n", t.threw, t.rounds);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// The same with a LocalPort owned by a thread on core 0.
Task<void> serve_local_port(std::atomic<LocalPort*>& out, unsigned seed) {
  std::minstd_rand rng(seed);
  LocalPort port;
  out.store(&port, std::memory_order_release);
  while (Message* m = co_await wait_port(port)) {
    burn(rng() % 512);
    reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
  }
}

Task<Tally> local_port_client(Runtime& rt, std::atomic<LocalPort*>& port, long n) {
  while (port.load(std::memory_order_acquire) == nullptr) co_await yield_now();
  Tally t = co_await send_migrate_wait(rt, *port.load(), n);
  port.load()->close();  // on core 0, the port's context: its owner ends
  co_return t;
}

TEST(Migrate, ASenderMovesAwayFromALocalPortHoldingItsMessage) {
  Runtime rt(two_cores());
  std::atomic<LocalPort*> port{nullptr};
  auto server = rt.spawn(0, serve_local_port(port, 12));
  const long n = testing::stress(20'000, 2'000);
  auto client = rt.spawn(0, local_port_client(rt, port, n));
  Tally t = join_within(client, "the reply from a LocalPort to a sender that moved");
  EXPECT_EQ(t.wrong, 0) << "round " << t.first_wrong_round << ": result " << t.first_wrong;
  join_within(server, "the LocalPort's owner");
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// A server that takes each request on its own core, moves to the other core, replies there, and
// comes back for the next one.
Task<Tally> reply_from_the_other_core(LwThread& self, Core& other) {
  Tally t;
  while (Message* m = co_await wait_port(self.port())) {
    bool moved = true;
    try {
      co_await migrate_to(other);
    } catch (const std::logic_error&) {
      moved = false;
      ++t.threw;
    }
    reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
    if (moved) co_await migrate_to(self.core());
    ++t.rounds;
  }
  co_return t;
}

Task<Tally> do_msg_client(ThreadPort& server, long n) {
  Tally t;
  ValueMsg m;
  for (long i = 0; i < n; ++i, ++t.rounds) {
    m.value = static_cast<int>(i % 1000);
    int r = co_await do_msg(server, m);
    if (r != m.value + 1) t.bad(i, r);
  }
  co_return t;
}

TEST(Migrate, AServerTakesAMessageMovesToAnotherCoreAndRepliesThere) {
  Runtime rt(two_cores());
  auto server =
      rt.spawn(1, [&rt](LwThread& self) { return reply_from_the_other_core(self, rt.core(0)); });
  const long n = testing::stress(10'000, 1'000);
  auto local = rt.spawn(1, do_msg_client(server.port(), n));  // on the server's core
  auto remote = rt.spawn(0, do_msg_client(server.port(), n));
  Tally a = join_within(local, "the same-core client of a server that replies from elsewhere");
  Tally b = join_within(remote, "the cross-core client of a server that replies from elsewhere");
  EXPECT_EQ(a.wrong, 0) << "round " << a.first_wrong_round << ": result " << a.first_wrong;
  EXPECT_EQ(b.wrong, 0) << "round " << b.first_wrong_round << ": result " << b.first_wrong;
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
  EXPECT_EQ(join_within(server, "the server").rounds, 2 * n);
}

// Neighbour: a server that moves to the other core for good and keeps serving its thread port
// from there (the port stays with the core that created it). Works, or wait_port throws.
Task<Tally> serve_from_the_other_core(LwThread& self, Core& other) {
  Tally t;
  co_await migrate_to(other);
  for (;;) {
    Message* m = nullptr;
    bool refused = false;
    try {
      m = co_await wait_port(self.port());
    } catch (const std::logic_error&) {
      refused = true;
    }
    if (refused) {
      ++t.threw;
      co_await migrate_to(self.core());  // go home and serve from there
      continue;
    }
    if (m == nullptr) break;
    reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
    ++t.rounds;
  }
  co_return t;
}

TEST(Migrate, AServerThatMovedAwayStillAnswersItsPortOrIsRefusedAtTheCall) {
  Runtime rt(two_cores());
  auto server =
      rt.spawn(1, [&rt](LwThread& self) { return serve_from_the_other_core(self, rt.core(0)); });
  const long n = testing::stress(5'000, 500);
  auto remote = rt.spawn(0, do_msg_client(server.port(), n));
  auto local = rt.spawn(1, do_msg_client(server.port(), n));
  Tally a = join_within(remote, "a client on core 0");
  Tally b = join_within(local, "a client on core 1");
  EXPECT_EQ(a.wrong + b.wrong, 0);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// A sender whose reply port is its own thread port (on core 0) moves to core 1 and waits there;
// once back home its port must not still hold the reply (wait_msg took it off the queue).
Task<Tally> reply_port_migrate_wait(LwThread& self, Runtime& rt, ThreadPort& server, long n) {
  std::minstd_rand rng(31);
  Tally t;
  ValueMsg m;
  m.set_reply_port(&self.port());
  for (long i = 0; i < n; ++i, ++t.rounds) {
    m.value = static_cast<int>(i % 1000);
    send_msg(server, m);
    co_await migrate_to(rt.core(1));
    // Busy for a while: the reply may reach the home port (and be queued there) before the wait.
    for (unsigned k = rng() % 3; k > 0; --k) co_await yield_now();
    burn(rng() % 2048);
    int r = co_await wait_msg(m);
    co_await migrate_to(rt.core(0));
    if (r != m.value + 1) t.bad(i, r);
    if (m.flags() & kMsgQueued) {  // the reply still sits in the thread port: take it off
      t.bad(i, -1000);
      Message* stale = co_await wait_port(self.port());
      if (stale != &m) co_return t;
    }
  }
  co_return t;
}

TEST(Migrate, ASenderWaitsOnAnotherCoreForAReplyQueuedOnItsHomePort) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, [](LwThread& self) { return jittery_echo(self, 5); });
  const long n = testing::stress(10'000, 1'000);
  auto client = rt.spawn(
      0, [&](LwThread& self) { return reply_port_migrate_wait(self, rt, server.port(), n); });
  Tally t = join_within(client, "the reply-port client that moved");
  EXPECT_EQ(t.wrong, 0) << "round " << t.first_wrong_round << ": result " << t.first_wrong
                        << " (-1000: the reply was left queued on the home port)";
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// =================================================================================================
// 4. Lifetimes at stop and at a thread's end.
// =================================================================================================

Task<void> count_one(std::atomic<int>* ran) {
  ran->fetch_add(1, std::memory_order_relaxed);
  co_return;
}

// Another plain thread spawns as fast as it can while stop(kDrain) runs: each spawn either throws
// std::logic_error or its thread runs and is drained; stop returns.
TEST(StopAndEnd, SpawnRacingADrainEitherThrowsOrRunsAndIsDrained) {
  const int iterations = testing::stress(200, 40);
  std::minstd_rand rng(13);
  for (int it = 0; it < iterations; ++it) {
    Runtime rt(two_cores());
    std::atomic<bool> go{false};
    std::atomic<int> ran{0};
    std::vector<JoinHandle<void>> handles;
    int counters = 0;
    std::thread spawner([&] {
      yield_until(go);
      for (int i = 0;; ++i) {
        try {
          if (i % 2) {
            handles.push_back(rt.spawn(i % 4 == 1 ? 1 : 0, parked_server));
          } else {
            handles.push_back(rt.spawn((i / 2) % 2, count_one(&ran)));
            ++counters;
          }
        } catch (const std::logic_error&) {
          return;
        }
      }
    });
    go.store(true, std::memory_order_release);
    burn(rng() % 20'000);
    stop_within(rt, StopMode::kDrain, "stop(kDrain) while another thread spawns");
    {
      Watchdog wd("the spawner to see spawn refused", kLimit);
      spawner.join();
    }
    int not_done = 0;
    for (auto& h : handles) not_done += h.done() ? 0 : 1;
    ASSERT_EQ(not_done, 0) << "iteration " << it << ": " << not_done << " of " << handles.size()
                           << " spawned threads neither ran to the end nor were refused";
    ASSERT_EQ(ran.load(), counters) << "iteration " << it;
  }
}

// Sends m to `to` and waits; the result is stored for the test.
template <class P>
Task<void> wait_on(P& to, std::atomic<int>* result, std::atomic<bool>* sent) {
  ValueMsg m;
  send_msg(to, m);
  sent->store(true, std::memory_order_release);
  result->store(co_await wait_msg(m), std::memory_order_release);
}

// stop(kCancel) with a thread parked on a message queued on another lightweight thread's port:
// the message is replied -ECANCELED and its sender runs on (its frame is not freed under it).
TEST(StopAndEnd, CancelWithAMessageQueuedOnAnotherThreadsPort) {
  std::atomic<int> result{1};
  std::atomic<bool> sent{false};
  {
    Runtime rt(two_cores());
    auto silent = rt.spawn(1, never_serves);
    rt.spawn(0, wait_on(silent.port(), &result, &sent)).detach();
    {
      Watchdog wd("the message to queue on the silent thread's port", kLimit);
      while (silent.port().counters().queued == 0) std::this_thread::yield();
    }
    silent.detach();
    stop_within(rt, StopMode::kCancel, "stop(kCancel)");
  }
  EXPECT_EQ(result.load(), -ECANCELED) << "1: the sender never saw its reply";
}

// stop(kCancel) destroys a parked thread whose frame holds a message queued on a user QueuePort
// that outlives the runtime; the port's end must not touch the freed frame (ASan).
TEST(StopAndEnd, CancelWithAMessageQueuedOnAUserQueuePortThatOutlivesTheRuntime) {
  QueuePort port;  // outlives the runtime
  std::atomic<int> result{1};
  std::atomic<bool> sent{false};
  {
    Runtime rt(two_cores());
    rt.spawn(0, wait_on(port, &result, &sent)).detach();
    {
      Watchdog wd("the message to queue on the user QueuePort", kLimit);
      while (port.size() == 0) std::this_thread::yield();
    }
    stop_within(rt, StopMode::kCancel, "stop(kCancel)");
  }
  std::printf("the parked sender saw %d (1: nothing)\n", result.load());
  // ~QueuePort replies what is still queued: the sender's frame must still exist by then, or the
  // message must no longer be queued.
}

// The same with a SerializedPort: the serializer is held (by a sender on core 1 whose work runs
// inline) while the parked thread's message arrives, so that message queues for the port's
// owner, which never comes.
struct HoldFirst {
  std::atomic<bool>* entered;
  std::atomic<bool>* second_queued;
  int operator()(Message& m) {
    if (static_cast<ValueMsg&>(m).value == 1) {
      entered->store(true, std::memory_order_release);
      spin_until(*second_queued);
    }
    return 3;
  }
};

Task<int> send_value_one(SerializedPort<HoldFirst>& port) {
  ValueMsg m;
  m.value = 1;
  co_return co_await do_msg(port, m);  // runs inline, holding the serializer
}

Task<void> wait_on_serialized(SerializedPort<HoldFirst>& port, std::atomic<bool>* queued,
                              std::atomic<int>* result) {
  ValueMsg m;
  m.value = 2;
  send_msg(port, m);  // the serializer is busy: queued
  queued->store(true, std::memory_order_release);
  result->store(co_await wait_msg(m), std::memory_order_release);
}

TEST(StopAndEnd, CancelWithAMessageQueuedOnAUserSerializedPort) {
  std::atomic<bool> entered{false};
  std::atomic<bool> queued{false};
  std::atomic<int> result{1};
  SerializedPort<HoldFirst> port(HoldFirst{&entered, &queued});  // outlives the runtime
  {
    Runtime rt(two_cores());
    auto holder = rt.spawn(1, send_value_one(port));
    {
      Watchdog wd("the holder to take the serializer", kLimit);
      yield_until(entered);
    }
    rt.spawn(0, wait_on_serialized(port, &queued, &result)).detach();
    EXPECT_EQ(join_within(holder, "the holder's inline work"), 3);
    EXPECT_EQ(port.pending(), 1u) << "the parked thread's message is queued";
    stop_within(rt, StopMode::kCancel, "stop(kCancel)");
  }
  std::printf("the parked sender saw %d (1: nothing)\n", result.load());
  // ~SerializedPort replies what is still queued: the sender's frame must still exist by then, or
  // the message must no longer be queued.
}

// A user QueuePort in one thread's frame, with a message from another thread queued on it; both
// threads parked at stop(kCancel), the sender spawned first (so destroyed first).
Task<void> own_port_and_sleep(std::atomic<QueuePort*>* out) {
  QueuePort port;
  out->store(&port, std::memory_order_release);
  co_await sleep_for(absl::Hours(1));
}

Task<void> wait_on_published(std::atomic<QueuePort*>* port, std::atomic<bool>* sent) {
  while (port->load(std::memory_order_acquire) == nullptr) co_await yield_now();
  ValueMsg m;
  send_msg(*port->load(), m);
  sent->store(true, std::memory_order_release);
  co_await wait_msg(m);
}

TEST(StopAndEnd, CancelWithAMessageQueuedOnAQueuePortInAnotherThreadsFrame) {
  Runtime rt(two_cores());
  std::atomic<QueuePort*> port{nullptr};
  std::atomic<bool> sent{false};
  rt.spawn(0, wait_on_published(&port, &sent)).detach();  // destroyed first
  rt.spawn(1, own_port_and_sleep(&port)).detach();
  {
    Watchdog wd("the message to queue on the other thread's QueuePort", kLimit);
    yield_until(sent);
  }
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// A thread took a message (wait_port) and is parked without replying when stop(kCancel) destroys
// it: the message must be replied -ECANCELED, so a plain-thread sender returns.
Task<void> take_and_sleep(LwThread& self, std::atomic<bool>* took) {
  Message* m = co_await wait_port(self.port());
  took->store(true, std::memory_order_release);
  co_await sleep_for(absl::Hours(1));
  if (m != nullptr) reply_msg(*m, 1);
}

TEST(StopAndEnd, AMessageTakenByAThreadThatCancelDestroysIsRepliedCancelled) {
  Runtime rt(two_cores());
  std::atomic<bool> took{false};
  auto holder = rt.spawn(1, [&took](LwThread& self) { return take_and_sleep(self, &took); });
  std::thread stopper([&] {
    yield_until(took);
    rt.stop(StopMode::kCancel);
  });
  ValueMsg m;
  int r;
  {
    Watchdog wd("do_msg_blocking on a message held by a thread stop(kCancel) destroyed", kLimit);
    r = do_msg_blocking(holder.port(), m);
  }
  EXPECT_EQ(r, -ECANCELED);
  Watchdog wd("stop(kCancel) on the stopper thread", kLimit);
  stopper.join();
}

TEST(StopAndEnd, AMessageTakenByAThreadThatCancelDestroysIsRepliedCancelledToWaitMsg) {
  Runtime rt(two_cores());
  std::atomic<bool> took{false};
  auto holder = rt.spawn(1, [&took](LwThread& self) { return take_and_sleep(self, &took); });
  ValueMsg m;
  send_msg(holder.port(), m);
  {
    Watchdog wd("the thread to take the message", kLimit);
    yield_until(took);
  }
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
  int r;
  {
    Watchdog wd("wait_msg_blocking on a message held by a thread stop(kCancel) destroyed", kLimit);
    r = wait_msg_blocking(m);
  }
  EXPECT_EQ(r, -ECANCELED);
}

// Neighbour: the sender of the taken message is a lightweight thread that is destroyed too, before
// or after the holder (threads are destroyed in the order spawned). Its message must not be
// written after its frame is gone (ASan).
Task<void> do_msg_to_published(std::atomic<ThreadPort*>* port, std::atomic<int>* result) {
  while (port->load(std::memory_order_acquire) == nullptr) co_await yield_now();
  ValueMsg m;
  result->store(co_await do_msg(*port->load(), m), std::memory_order_release);
}

TEST(StopAndEnd, CancelDestroysAHolderAndItsParkedSenderInEitherOrder) {
  for (int sender_first = 0; sender_first < 2; ++sender_first) {
    Runtime rt(two_cores());
    std::atomic<bool> took{false};
    std::atomic<int> result{1};
    std::atomic<ThreadPort*> port{nullptr};
    if (sender_first) rt.spawn(0, do_msg_to_published(&port, &result)).detach();
    auto holder = rt.spawn(1, [&took](LwThread& self) { return take_and_sleep(self, &took); });
    port.store(&holder.port(), std::memory_order_release);
    if (!sender_first) rt.spawn(0, do_msg_to_published(&port, &result)).detach();
    holder.detach();
    {
      Watchdog wd("the holder to take the message", kLimit);
      yield_until(took);
    }
    stop_within(rt, StopMode::kCancel, "stop(kCancel)");
    std::printf("sender %s: it saw %d (1: nothing)\n", sender_first ? "first" : "second",
                result.load());
  }
}

// join() of a thread that stop(kCancel) destroyed throws instead of blocking forever.
TEST(StopAndEnd, JoiningAThreadDestroyedByCancelThrows) {
  Runtime rt(two_cores());
  auto sleeper = rt.spawn(1, never_serves);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
  Watchdog wd("join() of a thread stop(kCancel) destroyed", kLimit);
  EXPECT_ANY_THROW(sleeper.join());
}

TEST(StopAndEnd, AJoinAlreadyBlockedWhenCancelDestroysTheThreadThrows) {
  Runtime rt(two_cores());
  auto sleeper = rt.spawn(1, never_serves);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    rt.stop(StopMode::kCancel);
  });
  {
    Watchdog wd("a join() blocked while stop(kCancel) destroys the thread", kLimit);
    EXPECT_ANY_THROW(sleeper.join());
  }
  Watchdog wd("stop(kCancel) on the stopper thread", kLimit);
  stopper.join();
}

// A thread that returned: its port refuses what is sent afterwards (-ECANCELED).
TEST(StopAndEnd, AThreadThatReturnedRefusesLaterMessages) {
  Runtime rt(two_cores());
  auto done = rt.spawn(1, [](LwThread&) { return answer(); });
  EXPECT_EQ(join_within(done, "a thread that returns at once"), 42);
  ValueMsg m;
  {
    Watchdog wd("do_msg_blocking to the port of a thread that returned", kLimit);
    EXPECT_EQ(do_msg_blocking(done.port(), m), -ECANCELED);
  }
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

Task<int> do_msg_once(ThreadPort& to) {
  ValueMsg m;
  co_return co_await do_msg(to, m);
}

TEST(StopAndEnd, AThreadThatReturnedRefusesLaterMessagesFromItsOwnCore) {
  Runtime rt(two_cores());
  auto done = rt.spawn(1, [](LwThread&) { return answer(); });
  EXPECT_EQ(join_within(done, "a thread that returns at once"), 42);
  auto sender = rt.spawn(1, do_msg_once(done.port()));  // same core: the local path
  EXPECT_EQ(join_within(sender, "do_msg from the same core to a thread that returned"), -ECANCELED);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// What was queued on its port when it returned is replied -ECANCELED.
Task<void> return_without_serving(LwThread&, std::atomic<bool>* go) {
  while (!go->load(std::memory_order_acquire)) co_await sleep_for(absl::Microseconds(200));
}

TEST(StopAndEnd, MessagesQueuedOnAThreadThatReturnsAreRepliedCancelled) {
  Runtime rt(two_cores());
  std::atomic<bool> go{false};
  auto quitter = rt.spawn(1, [&go](LwThread& self) { return return_without_serving(self, &go); });
  ValueMsg from_plain;
  send_msg(quitter.port(), from_plain);
  std::atomic<int> from_core{1};
  std::atomic<bool> sent{false};
  rt.spawn(0, wait_on(quitter.port(), &from_core, &sent)).detach();
  {
    Watchdog wd("both messages to queue", kLimit);
    while (quitter.port().counters().queued < 2) std::this_thread::yield();
  }
  go.store(true, std::memory_order_release);
  join_within(quitter, "the thread that returns with two messages queued");
  {
    Watchdog wd("the reply to a plain thread's message queued on a thread that returned", kLimit);
    EXPECT_EQ(wait_msg_blocking(from_plain), -ECANCELED);
  }
  {
    Watchdog wd("the reply to a core's message queued on a thread that returned", kLimit);
    while (from_core.load() == 1) std::this_thread::yield();
  }
  EXPECT_EQ(from_core.load(), -ECANCELED);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// A SerializedPort served by a lightweight thread, still open at stop: stop must return (it may
// say what it waits for), and nothing may crash afterwards, when the port goes.
int seven(Message&) { return 7; }
using SevenPort = SerializedPort<int (*)(Message&)>;

TEST(StopAndEnd, DrainWithASerializedPortStillOpenReturns) {
  SevenPort port(&seven);  // outlives the runtime
  Runtime rt(two_cores());
  auto owner = rt.spawn(1, port.serve());
  ValueMsg m;
  {
    Watchdog wd("a message to the SerializedPort", kLimit);
    EXPECT_EQ(do_msg_blocking(port, m), 7);
  }
  stop_within(rt, StopMode::kDrain, "stop(kDrain) with a SerializedPort still open");
}

TEST(StopAndEnd, CancelWithASerializedPortStillOpenReturnsAndThePortEndsCleanly) {
  SevenPort port(&seven);  // outlives the runtime
  Runtime rt(two_cores());
  auto owner = rt.spawn(1, port.serve());
  ValueMsg m;
  {
    Watchdog wd("a message to the SerializedPort", kLimit);
    EXPECT_EQ(do_msg_blocking(port, m), 7);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the owner is parked in serve()
  stop_within(rt, StopMode::kCancel, "stop(kCancel) with a SerializedPort still open");
  // The owner's frame goes with its handle, the port after it.
}

// Many parked threads: stop should not take long.
void stop_many(StopMode mode, int n) {
  Runtime rt(two_cores());
  for (int i = 0; i < n; ++i) rt.spawn(i % 2, parked_server).detach();
  auto t0 = std::chrono::steady_clock::now();
  stop_within(rt, mode, "stop() of many parked threads");
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("stop(%s) of %d threads parked in wait_port: %.3f s\n",
              mode == StopMode::kDrain ? "kDrain" : "kCancel", n, s);
  ::testing::Test::RecordProperty("stop_seconds", std::to_string(s));
}

// 20000 normally (about 1 s on two cores today); fewer under a sanitizer, which slows the
// thread bookkeeping several times over.
TEST(StopAndEnd, DrainOfTwentyThousandParkedThreadsFinishes) {
  stop_many(StopMode::kDrain, testing::stress(20'000, 10'000));
}

TEST(StopAndEnd, CancelOfTwentyThousandParkedThreadsFinishes) {
  stop_many(StopMode::kCancel, testing::stress(20'000, 10'000));
}

// =================================================================================================
// 5. Fairness. A same-core reply resumes the waiter directly; a ping-pong that never parks on the
//    loop must still let the core serve its timers, its inboxes and its run queue.
// =================================================================================================

struct PingPong {
  std::atomic<bool> stop{false};
  std::atomic<long> rounds{0};
  std::atomic<long> probes{0};
  std::atomic<long> worst_us{0};
  void record(absl::Duration d) {
    long us = static_cast<long>(absl::ToInt64Microseconds(d));
    long w = worst_us.load();
    while (us > w && !worst_us.compare_exchange_weak(w, us)) {
    }
    probes.fetch_add(1);
  }
};

Task<void> pong(LwThread& self) {
  while (Message* m = co_await wait_port(self.port())) reply_msg(*m, 0);
}

Task<void> ping(ThreadPort& to, PingPong* pp) {
  ValueMsg m;
  while (!pp->stop.load(std::memory_order_relaxed)) {
    co_await do_msg(to, m);
    pp->rounds.fetch_add(1, std::memory_order_relaxed);
  }
}

Task<void> ping_by_reply_port(LwThread& self, ThreadPort& to, PingPong* pp) {
  ValueMsg m;
  m.set_reply_port(&self.port());
  while (!pp->stop.load(std::memory_order_relaxed)) {
    send_msg(to, m);
    co_await wait_msg(m);
    pp->rounds.fetch_add(1, std::memory_order_relaxed);
  }
}

Task<void> timer_probe(PingPong* pp) {
  while (!pp->stop.load()) {
    absl::Time t0 = absl::Now();
    co_await sleep_for(absl::Milliseconds(1));
    pp->record(absl::Now() - t0);
  }
}

Task<void> message_probe(ThreadPort& to, PingPong* pp) {
  while (!pp->stop.load()) {
    ValueMsg m;
    absl::Time t0 = absl::Now();
    co_await do_msg(to, m);
    pp->record(absl::Now() - t0);
    co_await sleep_for(absl::Milliseconds(1));
  }
}

Task<void> yield_probe(PingPong* pp) {
  while (!pp->stop.load()) {
    absl::Time t0 = absl::Now();
    co_await yield_now();
    pp->record(absl::Now() - t0);
    co_await sleep_for(absl::Microseconds(100));
  }
}

// Runs the ping-pong on core 0 for up to a second, and checks the probe made progress meanwhile.
template <class StartProbe>
void probe_during_ping_pong(bool reply_port, StartProbe start_probe) {
  Runtime rt(two_cores());
  PingPong pp;
  auto server = rt.spawn(0, pong);
  auto probe = start_probe(rt, pp);
  auto client =
      reply_port
          ? rt.spawn(0,
                     [&](LwThread& self) { return ping_by_reply_port(self, server.port(), &pp); })
          : rt.spawn(0, ping(server.port(), &pp));
  {
    Watchdog wd("the ping-pong to start", kLimit);
    while (pp.rounds.load() < 1000) std::this_thread::yield();
  }
  long before = pp.probes.load();
  auto t0 = std::chrono::steady_clock::now();
  while (pp.probes.load() < before + 10 &&
         std::chrono::steady_clock::now() - t0 < std::chrono::seconds(1)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  long progressed = pp.probes.load() - before;
  long rounds = pp.rounds.load();
  pp.stop.store(true);
  join_within(client, "the ping-pong client");
  join_within(probe, "the probe");
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
  EXPECT_GE(progressed, 10) << "in 1 s of ping-pong (" << rounds << " rounds) the probe ran "
                            << progressed << " times";
  EXPECT_LT(pp.worst_us.load(), 500'000) << "a probe waited " << pp.worst_us.load() << " us";
}

TEST(Fairness, ATimerOnTheSameCoreFiresDuringADirectResumePingPong) {
  probe_during_ping_pong(false,
                         [](Runtime& rt, PingPong& pp) { return rt.spawn(0, timer_probe(&pp)); });
}

TEST(Fairness, AMessageFromTheOtherCoreIsServedDuringADirectResumePingPong) {
  JoinHandle<int> echo;
  probe_during_ping_pong(false, [&echo](Runtime& rt, PingPong& pp) {
    echo = rt.spawn(0, echo_plus_one);
    return rt.spawn(1, message_probe(echo.port(), &pp));
  });
}

TEST(Fairness, TheRunQueueRunsDuringADirectResumePingPong) {
  probe_during_ping_pong(false,
                         [](Runtime& rt, PingPong& pp) { return rt.spawn(0, yield_probe(&pp)); });
}

TEST(Fairness, ATimerOnTheSameCoreFiresDuringAReplyPortPingPong) {
  probe_during_ping_pong(true,
                         [](Runtime& rt, PingPong& pp) { return rt.spawn(0, timer_probe(&pp)); });
}

// =================================================================================================
// 6. Misuse fails loudly at the call: an exception, never std::terminate, never a silent hang.
// =================================================================================================

Task<int> await_handle_twice(JoinHandle<int> h) {
  int first = co_await h;
  try {
    co_await h;
  } catch (const std::logic_error&) {
    co_return first;
  }
  co_return -1;
}

TEST(Misuse, ASecondCoAwaitOfAJoinHandleThrowsLogicError) {
  Runtime rt(two_cores());
  auto target = rt.spawn(1, answer());
  auto waiter = rt.spawn(0, await_handle_twice(target));
  EXPECT_EQ(join_within(waiter, "a task awaiting a JoinHandle twice"), 42);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

Task<int> await_handle_after_join(JoinHandle<int> h) {
  try {
    co_await h;
  } catch (const std::logic_error&) {
    co_return 1;
  }
  co_return -1;
}

TEST(Misuse, CoAwaitOfAJoinHandleAlreadyJoinedThrowsLogicError) {
  Runtime rt(two_cores());
  auto target = rt.spawn(1, answer());
  EXPECT_EQ(join_within(target, "the target"), 42);
  auto waiter = rt.spawn(0, await_handle_after_join(target));
  EXPECT_EQ(join_within(waiter, "a task awaiting a joined JoinHandle"), 1);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

TEST(Misuse, CoAwaitOfAnEmptyJoinHandleThrowsLogicError) {
  Runtime rt(two_cores());
  auto waiter = rt.spawn(0, await_handle_after_join(JoinHandle<int>()));
  EXPECT_EQ(join_within(waiter, "a task awaiting an empty JoinHandle"), 1);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// wait_msg on a message whose reply was already collected from its reply port by wait_port: it is
// done, so wait_msg returns its result at once (it must not wait for a reply that will not come).
Task<int> collect_then_wait_msg(LwThread& self, ThreadPort& server) {
  ValueMsg m;
  m.value = 20;
  m.set_reply_port(&self.port());
  send_msg(server, m);
  Message* got = co_await wait_port(self.port());
  if (got != &m || !m.done()) co_return -1;
  int r = co_await wait_msg(m);
  if (r != co_await wait_msg(m)) co_return -2;  // and again
  co_return r;
}

TEST(Misuse, WaitMsgForAMessageWhoseReplyWasCollectedReturnsAtOnce) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, echo_plus_one);
  auto client =
      rt.spawn(0, [&](LwThread& self) { return collect_then_wait_msg(self, server.port()); });
  EXPECT_EQ(join_within(client, "wait_msg after the reply was collected"), 21);
  QueuePort replies;
  ValueMsg m;
  m.value = 30;
  m.set_reply_port(&replies);
  send_msg(server.port(), m);
  {
    Watchdog wd("wait_port_blocking, then wait_msg_blocking on the collected reply", kLimit);
    EXPECT_EQ(wait_port_blocking(replies), &m);
    EXPECT_EQ(wait_msg_blocking(m), 31);
  }
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// wait_msg collects the reply from the reply port even when that port is a thread port on another
// core: afterwards the message is not queued anywhere and may be sent again.
Task<Tally> wait_msg_with_a_far_reply_port(ThreadPort& server, ThreadPort& far, long n) {
  Tally t;
  ValueMsg m;
  m.set_reply_port(&far);
  for (long i = 0; i < n; ++i, ++t.rounds) {
    m.value = static_cast<int>(i);
    send_msg(server, m);
    co_await sleep_for(absl::Microseconds(200));  // the reply is queued on `far` by now
    int r = co_await wait_msg(m);
    if (r != m.value + 1) t.bad(i, r);
    if (m.flags() & kMsgQueued) {
      t.bad(i, -1000);
      co_return t;  // sending it again would be a broken rule
    }
  }
  co_return t;
}

TEST(Misuse, WaitMsgCollectsAReplyQueuedOnAThreadPortOfAnotherCore) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, echo_plus_one);
  auto far = rt.spawn(1, never_serves);  // its port only collects replies
  auto client = rt.spawn(0, wait_msg_with_a_far_reply_port(server.port(), far.port(), 20));
  Tally t = join_within(client, "wait_msg with a reply port on another core");
  EXPECT_EQ(t.wrong, 0) << "round " << t.first_wrong_round << ": result " << t.first_wrong
                        << " (-1000: still queued on the reply port after wait_msg)";
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// block_on (and join) from a core would block the core on its own work: they throw instead.
Task<int> block_on_from_a_core(Runtime& rt) {
  try {
    int r = rt.block_on(answer());
    co_return r == 42 ? -1 : -2;  // returned: the core blocked meanwhile
  } catch (const std::logic_error&) {
    co_return 1;
  }
}

TEST(Misuse, BlockOnFromCoreZeroThrowsInsteadOfDeadlocking) {
  Runtime rt(two_cores());
  auto h = rt.spawn(0, block_on_from_a_core(rt));
  EXPECT_EQ(join_within(h, "block_on called on core 0 (runs its task on core 0)"), 1);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

TEST(Misuse, BlockOnFromAnotherCoreThrows) {
  Runtime rt(two_cores());
  auto h = rt.spawn(1, block_on_from_a_core(rt));
  EXPECT_EQ(join_within(h, "block_on called on core 1"), 1)
      << "-1: it blocked core 1 until core 0 answered";
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

Task<int> join_on_the_same_core(Runtime& rt) {
  auto other = rt.spawn(0, answer());
  try {
    int r = other.join();
    co_return r == 42 ? -1 : -2;
  } catch (const std::logic_error&) {
    co_return 1;
  }
}

TEST(Misuse, JoinFromACoreThrowsInsteadOfDeadlocking) {
  Runtime rt(two_cores());
  auto h = rt.spawn(0, join_on_the_same_core(rt));
  EXPECT_EQ(join_within(h, "join() called on core 0 for a thread on core 0"), 1);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// runtime/timer.h: sleeps "must be awaited on a core; elsewhere they throw std::logic_error" —
// also when the deadline has already passed.
TEST(Misuse, SleepingOnAPlainThreadThrowsEvenWithNothingToWaitFor) {
  auto zero = []() -> Task<void> { co_await sleep_for(absl::ZeroDuration()); };
  auto negative = []() -> Task<void> { co_await sleep_for(absl::Milliseconds(-5)); };
  auto past = []() -> Task<void> { co_await sleep_until(absl::Now() - absl::Seconds(1)); };
  auto real = []() -> Task<void> { co_await sleep_for(absl::Milliseconds(1)); };
  EXPECT_THROW(sync_wait(zero()), std::logic_error) << "sleep_for(ZeroDuration())";
  EXPECT_THROW(sync_wait(negative()), std::logic_error) << "sleep_for(negative)";
  EXPECT_THROW(sync_wait(past()), std::logic_error) << "sleep_until(a past deadline)";
  EXPECT_THROW(sync_wait(real()), std::logic_error) << "sleep_for(1 ms)";
}

// spawn(core, fn): "fn returns a Task<T> and may keep `self`". A lambda coroutine's captures live
// in the closure; a closure passed to spawn must live as long as its thread.
std::atomic<bool> spawn_returned{false};

TEST(Misuse, ACapturingLambdaPassedToSpawnKeepsItsCapturesForTheThreadsLifetime) {
  Runtime rt(two_cores());
  spawn_returned.store(false);
  std::vector<int> values(64, 7);
  auto h = rt.spawn(0, [values](LwThread&) -> Task<int> {
    while (!spawn_returned.load(std::memory_order_acquire)) co_await yield_now();
    int sum = 0;
    for (int v : values) sum += v;
    co_return sum;
  });
  spawn_returned.store(true, std::memory_order_release);
  EXPECT_EQ(join_within(h, "a lambda coroutine reading its captures"), 64 * 7);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

// =================================================================================================
// 7. Deadlines: an expired do_msg_until is -ETIMEDOUT (an explicit abort stays -ECANCELED).
// =================================================================================================

Task<int> until(ThreadPort& to, absl::Duration d) {
  ValueMsg m;
  m.value = 4;
  co_return co_await do_msg_until(to, m, absl::Now() + d);
}

TEST(Deadline, AnExpiredDeadlineOnAnotherCoreIsTimedOut) {
  Runtime rt(two_cores());
  auto silent = rt.spawn(1, never_serves);
  auto h = rt.spawn(0, until(silent.port(), absl::Milliseconds(5)));
  EXPECT_EQ(join_within(h, "do_msg_until to a silent thread on core 1"), -ETIMEDOUT);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

TEST(Deadline, AnExpiredDeadlineOnTheSameCoreIsTimedOut) {
  Runtime rt(two_cores());
  auto silent = rt.spawn(0, never_serves);
  auto h = rt.spawn(0, until(silent.port(), absl::Milliseconds(5)));
  EXPECT_EQ(join_within(h, "do_msg_until to a silent thread on core 0"), -ETIMEDOUT);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

TEST(Deadline, ADeadlineAlreadyPastIsTimedOut) {
  Runtime rt(two_cores());
  auto silent = rt.spawn(1, never_serves);
  auto h = rt.spawn(0, until(silent.port(), absl::Milliseconds(-1)));
  EXPECT_EQ(join_within(h, "do_msg_until with a past deadline"), -ETIMEDOUT);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

TEST(Deadline, AReplyInTimeIsItsOwnResult) {
  Runtime rt(two_cores());
  auto echo = rt.spawn(1, echo_plus_one);
  auto h = rt.spawn(0, until(echo.port(), absl::Seconds(10)));
  EXPECT_EQ(join_within(h, "do_msg_until answered in time"), 5);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

Task<int> send_and_abort(ThreadPort& to) {
  ValueMsg m;
  m.set_abortable(true);
  send_msg(to, m);
  abort_msg(m);
  co_return co_await wait_msg(m);
}

TEST(Deadline, AnExplicitAbortStaysCancelled) {
  Runtime rt(two_cores());
  auto silent = rt.spawn(1, never_serves);
  auto h = rt.spawn(0, send_and_abort(silent.port()));
  EXPECT_EQ(join_within(h, "an aborted message to a silent thread"), -ECANCELED);
  stop_within(rt, StopMode::kCancel, "stop(kCancel)");
}

}  // namespace
}  // namespace msgport
