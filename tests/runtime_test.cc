// The per-core runtime: cores, lightweight threads, cross-core messages, joins, shutdown.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/timer.h>
#include <msgport/runtime/yield.h>
#include <sys/resource.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

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
  auto on_core = []() -> Task<int> { co_return this_core().id(); };
  EXPECT_EQ(rt.block_on(answer()), 42);
  EXPECT_EQ(rt.block_on(on_core()), 0);
  EXPECT_EQ(rt.spawn(1, on_core()).join(), 1);
  EXPECT_THROW(this_core(), std::logic_error) << "main is not a core";
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
  Core* home = Core::current();
  for (int i = 0; i < n; ++i) {
    m.value = i;
    int r = co_await do_msg(server, m);
    if (Core::current() != home) co_return -1;  // resumed on its own core
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

// A core that cannot start is a clear error, and the cores started before it are stopped, not
// left running (which would hang the runtime's teardown). With room for exactly five more file
// descriptors, three cores get their eventfds and cores 0 and 1 their io_urings; core 2's ring
// fails. Not under sanitizers: their runtimes borrow descriptors of their own when a thread
// starts (UBSan's vptr checks open a pipe), so the count is theirs to spoil.
TEST(Runtime, ACoreThatCannotStartIsAnErrorAndStopsTheOthers) {
  if (testing::kSanitized) GTEST_SKIP() << "the sanitizer runtime needs file descriptors here";
  rlimit saved{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 0;
  for (int free_below = 0; free_below < 5; ++low.rlim_cur) {
    if (fcntl(static_cast<int>(low.rlim_cur), F_GETFD) == -1) ++free_below;
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  RuntimeOptions o;
  o.cores = 3;
  std::string error;
  try {
    Runtime rt(o);
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  EXPECT_NE(error.find("io_uring_queue_init on core 2"), std::string::npos) << error;
}

TEST(Runtime, DrainServesWhatIsQueuedThenServersEnd) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, doubler);
  ValueMsg msgs[3];
  for (int i = 0; i < 3; ++i) {
    msgs[i].value = i + 1;
    send_msg(server.port(), msgs[i]);  // from this plain thread; no reply port: check_msg
  }
  rt.stop(StopMode::kDrain);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(check_msg(msgs[i]));
    EXPECT_EQ(msgs[i].result(), 2 * (i + 1)) << "queued before stop: served, not cancelled";
  }
  EXPECT_EQ(server.join(), 3) << "its port closed: wait_port returned nullptr";
}

TEST(Runtime, CancelRepliesQueuedMessagesAndRefusesLaterOnes) {
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

namespace msgport {
namespace {

using testing::ValueMsg;

// ---- timers ------------------------------------------------------------------------------------

Task<std::vector<int>> sleepers_in_order() {
  // Three sleeps armed out of order fire in deadline order, none early.
  std::vector<int> order;
  absl::Time start = absl::Now();
  bool early = false;
  auto sleeper = [&](int id, absl::Duration d) -> Task<void> {
    co_await sleep_for(d);
    if (absl::Now() - start < d) early = true;
    order.push_back(id);
  };
  Task<void> a = sleeper(3, absl::Milliseconds(30));
  Task<void> b = sleeper(1, absl::Milliseconds(10));
  Task<void> c = sleeper(2, absl::Milliseconds(20));
  a.start();
  b.start();
  c.start();
  co_await sleep_for(absl::Milliseconds(45));
  co_await a.finished();
  co_await b.finished();
  co_await c.finished();
  if (early) order.push_back(-1);
  co_return order;
}

TEST(Timers, FireInDeadlineOrderAndNeverEarly) {
  Runtime rt(two_cores());
  EXPECT_EQ(rt.block_on(sleepers_in_order()), (std::vector<int>{1, 2, 3}));
  rt.stop();
}

TEST(Timers, SleepingOutsideACoreIsAnError) {
  auto t = []() -> Task<void> { co_await sleep_for(absl::Milliseconds(1)); }();
  EXPECT_THROW(sync_wait(std::move(t)), std::logic_error);
}

// A server that never answers: every message stays queued.
Task<int> black_hole(LwThread& self) {
  co_await sleep_for(absl::Hours(1));  // never takes a message
  (void)self;
  co_return 0;
}

Task<std::vector<int>> deadlines(ThreadPort& silent, ThreadPort& echo) {
  std::vector<int> results;
  ValueMsg m;
  m.value = 4;
  results.push_back(co_await do_msg_until(silent, m, absl::Now() + absl::Milliseconds(5)));
  results.push_back(co_await do_msg_until(echo, m, absl::Now() + absl::Seconds(10)));
  co_return results;
}

TEST(Timers, ADeadlineAbortsAMessageThatIsStillRepliedExactlyOnce) {
  Runtime rt(two_cores());
  auto silent = rt.spawn(1, black_hole);
  auto echo = rt.spawn(1, doubler);
  // Expired: cancelled in the silent server's queue (-ETIMEDOUT). In time: its own result.
  EXPECT_EQ(rt.block_on(deadlines(silent.port(), echo.port())), (std::vector<int>{-ETIMEDOUT, 8}));
  rt.stop(StopMode::kCancel);
}

// ---- full cross-core rings --------------------------------------------------------------------

Task<std::vector<int>> recorder(LwThread& self) {
  std::vector<int> seen;
  while (Message* m = co_await wait_port(self.port())) {
    seen.push_back(static_cast<ValueMsg*>(m)->value);
    reply_msg(*m, 0);
  }
  co_return seen;
}

Task<int> flood(ThreadPort& to, int n) {
  std::vector<ValueMsg> msgs(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    msgs[static_cast<std::size_t>(i)].value = i;
    send_msg(to, msgs[static_cast<std::size_t>(i)]);  // far more than the ring holds
  }
  int done = 0;
  for (auto& m : msgs) {
    co_await wait_msg(m);
    ++done;
  }
  co_return done;
}

// Two cores whose rings hold two entries each: a burst of sends overflows at once.
RuntimeOptions tiny_rings() {
  RuntimeOptions o = two_cores();
  o.ring_capacity = 2;
  return o;
}

// The recorder saw 0, 1, ..., n-1: nothing lost, nothing reordered.
void expect_all_in_order(const std::vector<int>& seen, int n) {
  ASSERT_EQ(seen.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<std::size_t>(i)], i) << "order kept";
}

TEST(CrossCore, AFullRingNeverLosesOrReordersMessages) {
  Runtime rt(tiny_rings());
  auto sink = rt.spawn(1, recorder);
  const int n = 5000;
  EXPECT_EQ(rt.block_on(flood(sink.port(), n)), n);
  EXPECT_GT(rt.counters()[0].overflowed, 0u) << "the ring did fill up";
  rt.stop(StopMode::kCancel);
  expect_all_in_order(sink.join(), n);
}

// A lightweight thread's port is also its reply port (DragonFly's td_msgport): replies from
// another core come back through the ring and are queued there, in the order replied, each once.
Task<std::vector<int>> collect_replies(LwThread& self, ThreadPort& server, int n) {
  std::vector<ValueMsg> msgs(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    ValueMsg& m = msgs[static_cast<std::size_t>(i)];
    m.value = i;
    m.set_reply_port(&self.port());
    send_msg(server, m);
  }
  std::vector<int> results;
  while (results.size() < msgs.size()) {
    Message* r = co_await wait_port(self.port());
    if (r == nullptr || !r->done()) co_return std::vector<int>{-1};  // only replies come here
    results.push_back(r->result() / 2);  // the doubler's answer: value * 2
  }
  if (self.port().size() != 0) results.push_back(-2);  // nothing twice
  co_return results;
}

TEST(CrossCore, RepliesQueueOnTheSendersThreadPortInOrder) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, doubler);
  const int n = 1000;
  auto client =
      rt.spawn(0, [&server](LwThread& self) { return collect_replies(self, server.port(), n); });
  expect_all_in_order(client.join(), n);
  rt.stop(StopMode::kCancel);
  EXPECT_EQ(server.join(), n);
}

// Backpressure: while core 0 has entries waiting for space in a full ring, it resumes nothing
// from its run queue. A bystander on core 0 looks at the backlog every time it runs.
struct Bystander {
  std::atomic<bool> stop{false};
  int runs = 0;              // written on core 0 only; read after the join
  int ran_with_backlog = 0;  // must stay 0
};

Task<void> bystander(Bystander& b) {
  while (!b.stop.load(std::memory_order_relaxed)) {
    ++b.runs;
    if (Core::current()->backlog() != 0) ++b.ran_with_backlog;
    co_await yield_now();
  }
}

Task<int> flood_beside(ThreadPort& to, int n, Bystander& b) {
  co_await yield_now();  // the bystander is running
  int done = co_await flood(to, n);
  b.stop.store(true, std::memory_order_relaxed);
  co_return done;
}

TEST(CrossCore, AFullRingHoldsBackTheSendingCoreUntilThereIsRoom) {
  Runtime rt(tiny_rings());
  auto sink = rt.spawn(1, recorder);
  Bystander b;
  auto watcher = rt.spawn(0, bystander(b));
  const int n = 5000;
  EXPECT_EQ(rt.block_on(flood_beside(sink.port(), n, b)), n);
  watcher.join();
  EXPECT_GT(b.runs, 1);
  EXPECT_EQ(b.ran_with_backlog, 0) << "a run-queue coroutine ran while entries waited for room";
  CoreCounters c = rt.counters()[0];
  EXPECT_GT(c.overflowed, 0u) << "the ring did fill up";
  EXPECT_GT(c.held_back, 0u) << "and the core held its run queue back";
  rt.stop(StopMode::kCancel);
  expect_all_in_order(sink.join(), n);
}

// The hold-back covers every way a coroutine can be resumed, not just the run queue. Core 1 is
// kept busy (it drains nothing), so core 0's backlog stays put until the test releases it; a
// coroutine on core 0 that is resumed meanwhile would see it.
Task<void> spin_until(std::atomic<bool>& started, std::atomic<bool>& release) {
  started.store(true);
  while (!release.load()) {
  }
  co_return;
}

// Core 1 stays busy until the returned guard releases it (at the end of the scope at the latest).
struct BusyCore {
  std::atomic<bool> started{false}, release{false};
  JoinHandle<void> busy;
  BusyCore(Runtime& rt, int core) : busy(rt.spawn(core, spin_until(started, release))) {
    while (!started.load()) std::this_thread::yield();
  }
  void let_go() {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // what is held stays held
    release.store(true);
    busy.join();
  }
};

// Eight sends into a two-entry ring toward the busy core: six wait for room.
Task<void> burst_into(ThreadPort& sink, std::atomic<bool>* out = nullptr) {
  std::vector<ValueMsg> burst(8);
  for (ValueMsg& m : burst) send_msg(sink, m);
  if (out != nullptr) out->store(true);
  for (ValueMsg& x : burst) co_await wait_msg(x);
}

Task<long> deadline_beside_burst(ThreadPort& silent, ThreadPort& sink) {
  Task<void> burst = burst_into(sink);
  burst.start();  // runs until its first wait: the backlog is there
  ValueMsg m;
  int r = co_await do_msg_until(silent, m, absl::Now() + absl::Milliseconds(5));
  long backlog = static_cast<long>(this_core().backlog());
  co_await burst.finished();
  co_return r == -ETIMEDOUT ? backlog : -1;
}

TEST(CrossCore, ADeadlineThatFiresWhileHeldBackResumesItsSenderOnlyAfterwards) {
  Runtime rt(tiny_rings());
  auto sink = rt.spawn(1, recorder);
  BusyCore one(rt, 1);
  auto silent = rt.spawn(0, black_hole);  // holds the message on core 0: the abort is local
  auto probe =
      rt.spawn(0, [&](LwThread&) { return deadline_beside_burst(silent.port(), sink.port()); });
  one.let_go();
  EXPECT_EQ(probe.join(), 0) << "the deadline resumed its sender while entries waited for room";
  rt.stop(StopMode::kCancel);
}

Task<long> sleep_beside_burst(ThreadPort& sink) {
  Task<void> burst = burst_into(sink);
  burst.start();
  co_await sleep_for(absl::Milliseconds(1));
  long backlog = static_cast<long>(this_core().backlog());
  co_await burst.finished();
  co_return backlog;
}

TEST(CrossCore, ASleeperWhoseTimerFiresWhileHeldBackWaitsForTheBacklog) {
  Runtime rt(tiny_rings());
  auto sink = rt.spawn(1, recorder);
  BusyCore one(rt, 1);
  auto probe = rt.spawn(0, sleep_beside_burst(sink.port()));
  one.let_go();
  EXPECT_EQ(probe.join(), 0);
  rt.stop(StopMode::kCancel);
}

Task<int> gated_doubler(LwThread& self, std::atomic<bool>& open) {
  while (!open.load()) co_await yield_now();
  co_return co_await doubler(self);
}

Task<long> backlog_after_do_msg(ThreadPort& server) {
  ValueMsg m;
  co_await do_msg(server, m);
  co_return static_cast<long>(this_core().backlog());
}

Task<long> backlog_after_reply_port(LwThread& self, ThreadPort& server) {
  ValueMsg m;
  m.set_reply_port(&self.port());
  send_msg(server, m);
  co_await wait_msg(m);
  co_return static_cast<long>(this_core().backlog());
}

// Replies from a third core reach two parked senders on core 0 while it is held back: one by
// do_msg (a waiter posted across), one through its thread port as reply port (a queued reply
// that wakes wait_msg). Neither runs before the backlog is gone.
TEST(CrossCore, RepliesThatArriveWhileHeldBackWaitOnEveryRoute) {
  RuntimeOptions o = tiny_rings();
  o.cores = 3;
  Runtime rt(o);
  auto sink = rt.spawn(1, recorder);
  std::atomic<bool> backlogged{false};
  auto server = rt.spawn(2, [&](LwThread& s) { return gated_doubler(s, backlogged); });
  BusyCore one(rt, 1);
  auto a = rt.spawn(0, backlog_after_do_msg(server.port()));
  auto b = rt.spawn(0, [&](LwThread& s) { return backlog_after_reply_port(s, server.port()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(10));  // both parked by now, or soon
  auto burst = rt.spawn(0, burst_into(sink.port(), &backlogged));
  one.let_go();
  EXPECT_EQ(a.join(), 0) << "do_msg's reply resumed its sender while held back";
  EXPECT_EQ(b.join(), 0) << "a reply-port reply resumed its sender while held back";
  burst.join();
  rt.stop(StopMode::kCancel);
  EXPECT_EQ(server.join(), 2);
}

// ---- exactly once, across cores, with aborts --------------------------------------------------

struct Tally {
  std::atomic<long> served{0}, cancelled{0}, normal{0}, bad{0};
};

Task<void> counting_server(LwThread& self, Tally& tally) {
  while (Message* m = co_await wait_port(self.port())) {
    tally.served.fetch_add(1, std::memory_order_relaxed);
    reply_msg(*m, 1);
  }
}

Task<void> aborting_client(ThreadPort& server, long n, int seed, Tally& tally) {
  std::minstd_rand rng(static_cast<unsigned>(seed));
  ValueMsg m;
  m.set_abortable(true);
  for (long i = 0; i < n; ++i) {
    send_msg(server, m);
    if (rng() % 2) abort_msg(m);  // from the sender's own core
    int r = co_await wait_msg(m);
    if (r == 1) {
      tally.normal.fetch_add(1, std::memory_order_relaxed);
    } else if (r == -ECANCELED) {
      tally.cancelled.fetch_add(1, std::memory_order_relaxed);
    } else {
      tally.bad.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

// A counting server on each core, and on each core a client (client(port, n, seed, tally)) that
// talks to the other core's server. Every message must come back exactly once: served or
// cancelled, never both, never neither; and some were cancelled.
template <class MakeClient>
void clients_both_ways_each_replied_once(long per_client, int seed, MakeClient client) {
  Runtime rt(two_cores());
  Tally tally;
  auto s0 = rt.spawn(0, [&](LwThread& self) { return counting_server(self, tally); });
  auto s1 = rt.spawn(1, [&](LwThread& self) { return counting_server(self, tally); });
  auto c0 = rt.spawn(0, client(s1.port(), per_client, seed, tally));
  auto c1 = rt.spawn(1, client(s0.port(), per_client, seed + 1, tally));
  c0.join();
  c1.join();
  rt.stop(StopMode::kCancel);
  EXPECT_EQ(tally.bad.load(), 0);
  EXPECT_EQ(tally.normal.load() + tally.cancelled.load(), 2 * per_client);
  EXPECT_EQ(tally.served.load(), tally.normal.load()) << "served once each, never cancelled too";
  EXPECT_GT(tally.cancelled.load(), 0);
}

TEST(CrossCore, EveryMessageIsRepliedExactlyOnceUnderAborts) {
  clients_both_ways_each_replied_once(testing::on_one_cpu(10'000, testing::stress(200'000, 20'000)),
                                      1, aborting_client);
}

}  // namespace
}  // namespace msgport

#include <msgport/runtime/gate.h>
#include <msgport/runtime/migrate.h>
#include <msgport/runtime/when_all.h>

namespace msgport {
namespace {

using testing::ValueMsg;

// ---- structured concurrency -------------------------------------------------------------------

Task<int> after(absl::Duration d, int v) {
  co_await sleep_for(d);
  co_return v;
}
Task<void> nothing_much() { co_return; }

Task<bool> both_at_once() {
  absl::Time start = absl::Now();
  auto [a, b, c] = co_await when_all(after(absl::Milliseconds(20), 1),
                                     after(absl::Milliseconds(20), 2), nothing_much());
  (void)c;
  // Concurrent: about 20 ms, not 40 (loose bound: no timing assertion beyond "not serial").
  co_return a == 1 && b == 2 && absl::Now() - start < absl::Milliseconds(39);
}

TEST(WhenAll, RunsTasksConcurrentlyAndReturnsEveryResult) {
  Runtime rt(two_cores());
  EXPECT_TRUE(rt.block_on(both_at_once()));
  rt.stop();
}

Task<int> fails() {
  co_await sleep_for(absl::Milliseconds(1));
  throw std::runtime_error("first");
}

TEST(WhenAll, RethrowsTheFirstFailureAfterAllFinished) {
  Runtime rt(two_cores());
  auto t = []() -> Task<int> {
    auto [x, y] = co_await when_all(fails(), after(absl::Milliseconds(5), 7));
    co_return x + y;
  };
  EXPECT_THROW(rt.block_on(t()), std::runtime_error);
  rt.stop();
}

Task<void> connection(std::atomic<int>& finished, absl::Duration d) {
  co_await sleep_for(d);
  finished.fetch_add(1);
}

TEST(Gate, CloseWaitsForEveryHolderOnAnyCore) {
  Runtime rt(two_cores());
  Gate gate;
  std::atomic<int> finished{0};
  for (int i = 0; i < 10; ++i) {
    rt.spawn(i % 2, gate.hold(connection(finished, absl::Milliseconds(2 + i)))).detach();
  }
  gate.close_blocking();
  EXPECT_EQ(finished.load(), 10) << "close returned only after all ten left";
  EXPECT_EQ(gate.inside(), 0);
  EXPECT_THROW(gate.enter(), std::logic_error) << "a closed gate admits nobody";
  rt.stop();
}

TEST(Gate, AnEmptyGateClosesAtOnce) {
  Gate gate;
  gate.close_blocking();
  EXPECT_THROW(gate.close_blocking(), std::logic_error);
}

// ---- migration --------------------------------------------------------------------------------

Task<std::vector<int>> wander(Runtime& rt) {
  std::vector<int> where{Core::current()->id()};
  co_await migrate_to(rt.core(1));
  where.push_back(Core::current()->id());
  co_await migrate_to(rt.core(1));  // already there: no-op
  where.push_back(Core::current()->id());
  co_await migrate_to(rt.core(0));
  where.push_back(Core::current()->id());
  co_return where;
}

TEST(Migrate, ACoroutineContinuesOnTheCoreItMovesTo) {
  Runtime rt(two_cores());
  EXPECT_EQ(rt.block_on(wander(rt)), (std::vector<int>{0, 1, 1, 0}));
  rt.stop();
}

// ---- counters and misuse ----------------------------------------------------------------------

TEST(Counters, PortsAndCoresCountWhatTheyDid) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, doubler);
  rt.block_on(client(server.port(), 100));  // from core 0: cross-core
  auto local = [](ThreadPort& p) -> Task<int> { co_return co_await client(p, 5); };
  auto on_one = rt.spawn(1, local(server.port()));  // from core 1: local
  on_one.join();
  ThreadPort::Counters c = server.port().counters();
  EXPECT_EQ(c.begun_cross_core, 100u);
  EXPECT_EQ(c.begun_local, 5u);
  EXPECT_EQ(c.refused, 0u);
  EXPECT_NE(c.to_string().find("begun_cross_core=100"), std::string::npos);
  std::string dump = rt.dump_counters();
  EXPECT_NE(dump.find("core 0"), std::string::npos);
  EXPECT_NE(dump.find("sent_cross_core="), std::string::npos);
  EXPECT_GE(rt.counters()[0].sent_cross_core, 100u);
  CoreCounters one = rt.counters()[1];  // the server's core sums its ports
  EXPECT_EQ(one.begun_cross_core, 100u);
  EXPECT_EQ(one.begun_local, 5u);
  EXPECT_EQ(rt.counters()[0].begun_cross_core + rt.counters()[0].begun_local, 0u);
  rt.stop(StopMode::kCancel);
}

// A server that is busy until three requests wait in its queue, then serves them.
Task<int> busy_then_serve(LwThread& self) {
  while (self.port().size() < 3) co_await yield_now();
  int served = 0;
  while (Message* m = co_await wait_port(self.port())) {
    reply_msg(*m, 0);
    ++served;
  }
  co_return served;
}

Task<void> three_requests(ThreadPort& to) {
  ValueMsg m[3];
  for (ValueMsg& one : m) send_msg(to, one);
  for (ValueMsg& one : m) co_await wait_msg(one);
}

TEST(Counters, APortCountsWhatWaitedInItsQueueAndWhatItRefused) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, busy_then_serve);
  rt.block_on(three_requests(server.port()));
  ThreadPort::Counters c = server.port().counters();
  EXPECT_EQ(c.begun_cross_core, 3u);
  EXPECT_EQ(c.queued, 3u) << "the server was busy: all three waited in its queue";
  EXPECT_EQ(rt.counters()[1].queued, 3u) << "and its core counts them too";
  EXPECT_EQ(c.refused, 0u);
  rt.stop(StopMode::kCancel);
  EXPECT_EQ(server.join(), 3);
  ValueMsg late;
  EXPECT_EQ(do_msg_blocking(server.port(), late), -ECANCELED);
  EXPECT_EQ(server.port().counters().refused, 1u);
}

// drop_msg cannot take a message out of another core's queue synchronously: it says so, and the
// message is still served and replied exactly once.
Task<int> drop_across(ThreadPort& far) {
  ValueMsg m;
  m.value = 6;
  m.set_dropable(true);
  send_msg(far, m);
  if (drop_msg(m)) co_return -1;
  co_return co_await wait_msg(m);
}

TEST(CrossCore, DropOfAMessageQueuedOnAnotherCoreFailsAndTheReplyStillComes) {
  Runtime rt(two_cores());
  auto server = rt.spawn(1, doubler);
  EXPECT_EQ(rt.block_on(drop_across(server.port())), 12);
  rt.stop(StopMode::kCancel);
  EXPECT_EQ(server.join(), 1);
}

TEST(Misuse, AwaitingATaskTwiceIsAClearError) {
  auto twice = []() -> Task<int> {
    Task<int> t = answer();
    int a = co_await t;
    int b = co_await t;  // its result is gone
    co_return a + b;
  };
  EXPECT_THROW(sync_wait(twice()), std::logic_error);
}

TEST(Misuse, JoiningTwiceIsAClearError) {
  Runtime rt(two_cores());
  auto h = rt.spawn(0, answer());
  EXPECT_EQ(h.join(), 42);
  EXPECT_THROW(h.join(), std::logic_error);
  rt.stop();
}

// ---- ten million messages ---------------------------------------------------------------------

// Each client keeps a window of messages in flight to the server on the other core; some it
// aborts (from its own core), some go with a deadline. Every message must come back exactly
// once: served (result 1) or cancelled (-ECANCELED), never both, never neither.
Task<void> pipelined_client(ThreadPort& server, long n, int seed, Tally& tally) {
  constexpr int kWindow = 64;
  std::minstd_rand rng(static_cast<unsigned>(seed));
  std::vector<ValueMsg> window(kWindow);
  std::vector<bool> active(kWindow, false);
  auto count = [&tally](int r) {
    (r == 1                               ? tally.normal
     : r == -ECANCELED || r == -ETIMEDOUT ? tally.cancelled  // an abort, or a deadline
                                          : tally.bad)
        .fetch_add(1, std::memory_order_relaxed);
  };
  long sent = 0;  // messages sent so far (send_msg or do_msg_until); exactly n in the end
  for (int i = 0; i < kWindow && sent < n; ++i, ++sent) {
    window[static_cast<std::size_t>(i)].set_abortable(true);
    send_msg(server, window[static_cast<std::size_t>(i)]);
    active[static_cast<std::size_t>(i)] = true;
  }
  for (bool any = true; any;) {
    any = false;
    for (std::size_t i = 0; i < kWindow; ++i) {
      if (!active[i]) continue;
      ValueMsg& m = window[i];
      if (rng() % 8 == 0) abort_msg(m);  // from the sender's own core
      count(co_await wait_msg(m));
      active[i] = false;
      if (sent < n && rng() % 64 == 0) {  // now and then, one with a deadline
        ++sent;
        count(co_await do_msg_until(server, m, absl::Now() + absl::Microseconds(rng() % 50)));
      }
      if (sent < n) {
        ++sent;
        send_msg(server, m);
        active[i] = true;
        any = true;
      }
    }
  }
}

TEST(CrossCore, TenMillionMessagesEachRepliedExactlyOnce) {
  clients_both_ways_each_replied_once(
      testing::on_one_cpu(100'000, testing::stress(5'000'000, 100'000)), 3, pipelined_client);
}

}  // namespace
}  // namespace msgport
