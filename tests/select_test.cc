// Select: when_any (the first of several messages replied wins, the rest are aborted and still
// replied exactly once), wait_port_until / wait_port_for (a port or a deadline, no message lost
// in the race), and JoinHandle::cancel() (a lightweight thread's wait is interrupted, its later
// waits do not park). Every wait is bounded (a watchdog names the one that never ended).
#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/select.h>
#include <msgport/runtime/timer.h>
#include <msgport/runtime/when_all.h>
#include <msgport/runtime/yield.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "tests/test_support.h"
#include "tests/watchdog.h"

namespace msgport {
namespace {

using testing::ValueMsg;
using testing::Watchdog;

constexpr std::chrono::seconds kLimit{30};

RuntimeOptions two_cores() {
  RuntimeOptions o;
  o.cores = 2;
  return o;
}

template <class T>
T join_within(JoinHandle<T>& h, const char* what) {
  Watchdog wd(what, kLimit);
  return h.join();
}

void yield_until(const std::atomic<bool>& flag) {
  while (!flag.load(std::memory_order_acquire)) std::this_thread::yield();
}

// Replies value + 1 to every request until its port closes; counts what it replied.
Task<int> echo(LwThread& self, std::atomic<long>* replies) {
  int served = 0;
  while (Message* m = co_await wait_port(self.port())) {
    reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
    if (replies != nullptr) replies->fetch_add(1, std::memory_order_relaxed);
    ++served;
  }
  co_return served;
}

// Never looks at its port: what is sent there stays queued (until aborted or the port ends).
Task<void> never_serves(LwThread&) { co_await sleep_for(absl::Hours(1)); }

// An agent that answers at once: value * 2.
class InlinePort final : public Port {
 public:
  int begin_msg(Message& m) override { return static_cast<ValueMsg&>(m).value * 2; }
};

// =================================================================================================
// when_any
// =================================================================================================

TEST(WhenAny, WinnerOnTheSameCoreLoserAbortedAndReplied) {
  Runtime rt(two_cores());
  auto fast = rt.spawn(0, [](LwThread& self) { return echo(self, nullptr); });
  auto slow = rt.spawn(0, never_serves);
  ValueMsg a, b;
  a.value = 10;
  b.value = 20;
  AnyResult r =
      rt.block_on([](ThreadPort& f, ThreadPort& s, ValueMsg& a, ValueMsg& b) -> Task<AnyResult> {
        co_return co_await when_any(AnyMsg(f, a), AnyMsg(s, b));
      }(fast.port(), slow.port(), a, b));
  EXPECT_EQ(r.index, 0u);
  EXPECT_EQ(r.result, 11);
  EXPECT_EQ(r.sent, 2u);
  EXPECT_TRUE(a.done());
  EXPECT_TRUE(b.done());
  EXPECT_EQ(b.result(), -ECANCELED);  // taken out of the slow port's queue
  rt.stop(StopMode::kCancel);
}

TEST(WhenAny, WinnerOnAnotherCore) {
  Runtime rt(two_cores());
  auto fast = rt.spawn(1, [](LwThread& self) { return echo(self, nullptr); });
  auto slow0 = rt.spawn(0, never_serves);
  auto slow1 = rt.spawn(1, never_serves);
  ValueMsg a, b, c;
  a.value = 1;
  b.value = 2;
  c.value = 3;
  AnyResult r = rt.block_on([](ThreadPort& s0, ThreadPort& f, ThreadPort& s1, ValueMsg& a,
                               ValueMsg& b, ValueMsg& c) -> Task<AnyResult> {
    co_return co_await when_any(AnyMsg(s0, a), AnyMsg(f, b), AnyMsg(s1, c));
  }(slow0.port(), fast.port(), slow1.port(), a, b, c));
  EXPECT_EQ(r.index, 1u);
  EXPECT_EQ(r.result, 3);
  EXPECT_EQ(r.sent, 3u);
  EXPECT_EQ(a.result(), -ECANCELED);
  EXPECT_EQ(c.result(), -ECANCELED);  // aborted across cores, replied from core 1
  rt.stop(StopMode::kCancel);
}

TEST(WhenAny, AnInlineAnswerStopsTheSending) {
  Runtime rt(two_cores());
  auto slow = rt.spawn(1, never_serves);
  InlinePort now;
  ValueMsg a, b;
  a.value = 21;
  AnyResult r =
      rt.block_on([](InlinePort& now, ThreadPort& s, ValueMsg& a, ValueMsg& b) -> Task<AnyResult> {
        co_return co_await when_any(AnyMsg(now, a), AnyMsg(s, b));
      }(now, slow.port(), a, b));
  EXPECT_EQ(r.index, 0u);
  EXPECT_EQ(r.result, 42);
  EXPECT_EQ(r.sent, 1u);
  EXPECT_FALSE(b.flags() & kMsgInFlight);  // never sent
  rt.stop(StopMode::kCancel);
}

TEST(WhenAny, EmptyListIsInvalid) {
  Runtime rt(two_cores());
  AnyResult r =
      rt.block_on([]() -> Task<AnyResult> { co_return co_await when_any(std::span<AnyMsg>()); }());
  EXPECT_EQ(r.index, AnyResult::kNone);
  EXPECT_EQ(r.result, -EINVAL);
  EXPECT_EQ(r.sent, 0u);
  rt.stop();
}

// A loser whose agent has taken it and ignores the abort: when_any waits for its late reply.
TEST(WhenAny, WaitsForALoserThatRepliesLate) {
  Runtime rt(two_cores());
  std::atomic<bool> taken{false};
  auto late = rt.spawn(1, [&taken](LwThread& self) -> Task<void> {
    while (Message* m = co_await wait_port(self.port())) {
      taken.store(true, std::memory_order_release);
      co_await sleep_for(absl::Milliseconds(30));  // does not look at abort_requested()
      reply_msg(*m, 7);
    }
  });
  // The winner answers once the late one has been taken (so the abort finds it taken).
  auto winner = rt.spawn(0, [&taken](LwThread& self) -> Task<void> {
    while (Message* m = co_await wait_port(self.port())) {
      while (!taken.load(std::memory_order_acquire)) co_await yield_now();
      reply_msg(*m, static_cast<ValueMsg*>(m)->value * 2);
    }
  });
  auto a = std::make_unique<ValueMsg>();
  auto b = std::make_unique<ValueMsg>();
  b->value = 5;
  absl::Time start = absl::Now();
  AnyResult r =
      rt.block_on([](ThreadPort& l, ThreadPort& w, ValueMsg& a, ValueMsg& b) -> Task<AnyResult> {
        co_return co_await when_any(AnyMsg(l, a), AnyMsg(w, b));
      }(late.port(), winner.port(), *a, *b));
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.index, 1u);
  EXPECT_EQ(r.result, 10);
  EXPECT_EQ(r.sent, 2u);
  EXPECT_TRUE(a->done());
  EXPECT_TRUE(a->abort_requested());
  EXPECT_EQ(a->result(), 7);  // its own result: the holder finished it
  EXPECT_GE(took, absl::Milliseconds(25));
  a.reset();  // freed at once: nothing touches it any more
  b.reset();
  rt.stop(StopMode::kCancel);
}

// Many rounds across both cores: every message sent is replied exactly once (a server's reply or
// an abort's -ECANCELED, never both), and the caller frees all of them as soon as when_any
// returns.
TEST(WhenAny, EveryMessageRepliedOnceAcrossCoresAndFreedAtOnce) {
  Runtime rt(two_cores());
  std::atomic<long> replies{0};
  auto busy = [&replies](unsigned seed) {
    return [&replies, seed](LwThread& self) -> Task<void> {
      std::minstd_rand rng(seed);
      while (Message* m = co_await wait_port(self.port())) {
        for (unsigned n = rng() % 3; n > 0; --n) co_await yield_now();
        reply_msg(*m, static_cast<ValueMsg*>(m)->value + 1);
        replies.fetch_add(1, std::memory_order_relaxed);
      }
    };
  };
  auto s0 = rt.spawn(0, busy(1));
  auto s1 = rt.spawn(1, busy(2));
  auto s2 = rt.spawn(1, busy(3));
  struct Tally {
    long sent = 0, served = 0, cancelled = 0, wrong = 0;
  };
  const int rounds = testing::stress(20000, 2000);
  Tally t = [&] {
    Watchdog wd("the when_any rounds", kLimit);
    return rt.block_on(
        [](ThreadPort& p0, ThreadPort& p1, ThreadPort& p2, int rounds) -> Task<Tally> {
          Tally t;
          std::minstd_rand rng(7);
          for (int i = 0; i < rounds; ++i) {
            auto msgs = std::make_unique<ValueMsg[]>(3);
            for (int k = 0; k < 3; ++k) msgs[k].value = i * 3 + k;
            ThreadPort* p[3] = {&p0, &p1, &p2};
            unsigned o = rng() % 3;
            AnyMsg list[3] = {AnyMsg(*p[o], msgs[0]), AnyMsg(*p[(o + 1) % 3], msgs[1]),
                              AnyMsg(*p[(o + 2) % 3], msgs[2])};
            AnyResult r = co_await when_any(std::span<AnyMsg>(list));
            t.sent += static_cast<long>(r.sent);
            if (r.index >= r.sent || r.result != list[r.index].msg().result()) ++t.wrong;
            for (std::size_t k = 0; k < r.sent; ++k) {
              auto& m = static_cast<ValueMsg&>(list[k].msg());
              if (!m.done()) {
                ++t.wrong;
              } else if (m.result() == m.value + 1) {
                ++t.served;
              } else if (m.result() == -ECANCELED) {
                ++t.cancelled;
              } else {
                ++t.wrong;
              }
            }
            msgs.reset();  // freed right after return
            if (rng() % 4 == 0) co_await yield_now();
          }
          co_return t;
        }(s0.port(), s1.port(), s2.port(), rounds));
  }();
  rt.stop();
  EXPECT_EQ(t.wrong, 0);
  EXPECT_EQ(t.served + t.cancelled, t.sent);
  EXPECT_EQ(t.served, replies.load());  // no message both served and cancelled
  EXPECT_GT(t.cancelled, 0);
}

// =================================================================================================
// wait_port_until / wait_port_for
// =================================================================================================

TEST(WaitPortUntil, TimesOutWithNothingQueued) {
  Runtime rt(two_cores());
  auto h = rt.spawn(0, [](LwThread& self) -> Task<long> {
    absl::Time start = absl::Now();
    Message* m = co_await wait_port_for(self.port(), absl::Milliseconds(5));
    if (m != nullptr || self.port().closed()) co_return -1;
    Message* again = co_await wait_port_until(self.port(), absl::Now() - absl::Seconds(1));
    if (again != nullptr) co_return -2;
    // Queued already: returned without waiting, even with a deadline that has passed.
    ValueMsg mine;
    send_msg(self.port(), mine);
    Message* q = co_await wait_port_until(self.port(), absl::InfinitePast());
    if (q != &mine) co_return -3;
    reply_msg(mine, 0);
    if (!mine.done()) co_return -4;
    co_return absl::ToInt64Microseconds(absl::Now() - start);
  });
  long us = join_within(h, "the timed-out wait");
  EXPECT_GE(us, 5000);
  rt.stop();
}

TEST(WaitPortUntil, ReturnsAMessageThatArrivesBeforeTheDeadline) {
  Runtime rt(two_cores());
  auto receiver = rt.spawn(0, [](LwThread& self) -> Task<int> {
    Message* m = co_await wait_port_for(self.port(), absl::Seconds(20));
    if (m == nullptr) co_return -1;
    int v = static_cast<ValueMsg*>(m)->value;
    reply_msg(*m, v);
    co_return v;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ValueMsg m1;
  m1.value = 17;
  absl::Time start = absl::Now();
  {
    Watchdog wd("the reply to the message sent before the deadline", kLimit);
    EXPECT_EQ(do_msg_blocking(receiver.port(), m1), 17);
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_EQ(join_within(receiver, "the receiver"), 17);
  rt.stop();
}

// Messages arriving around the deadline, many times: each is received exactly once — the wait
// returns it, or it stays queued for the next one — never lost, never twice.
TEST(WaitPortUntil, ArrivalsRacingTheDeadlineAreNeverLost) {
  Runtime rt(two_cores());
  int n = testing::stress(20000, 3000);  // not a constant: captured by the lambdas
  std::vector<ValueMsg> msgs(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) msgs[static_cast<std::size_t>(i)].value = i;
  std::vector<std::atomic<int>> seen(static_cast<std::size_t>(n));
  struct Counts {
    long received = 0, timeouts = 0;
  };
  std::atomic<long> progress{0};
  auto receiver = rt.spawn(0, [&seen, &progress, n](LwThread& self) -> Task<Counts> {
    std::minstd_rand rng(11);
    Counts c;
    while (c.received < n) {
      Message* m = co_await wait_port_for(self.port(), absl::Microseconds(rng() % 40));
      if (m == nullptr) {
        ++c.timeouts;
        continue;
      }
      seen[static_cast<std::size_t>(static_cast<ValueMsg*>(m)->value)].fetch_add(1);
      ++c.received;
      progress.store(c.received, std::memory_order_release);
      reply_msg(*m, 0);
    }
    co_return c;
  });
  // From core 1, with pauses of random length: some land before the deadline, some after, some
  // as it passes.
  auto sender = rt.spawn(1, [&msgs, &receiver, &progress](LwThread&) -> Task<void> {
    std::minstd_rand rng(5);
    std::size_t i = 0;
    for (ValueMsg& m : msgs) {
      send_msg(receiver.port(), m);
      // Once a pause longer than any deadline: the receiver does time out.
      if (++i == msgs.size() / 2) {
        while (progress.load(std::memory_order_acquire) < static_cast<long>(i)) {
          co_await sleep_for(absl::Microseconds(50));
        }
        co_await sleep_for(absl::Milliseconds(1));
      }
      for (unsigned k = rng() % 200; k > 0; --k) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (rng() % 8 == 0) co_await sleep_for(absl::Microseconds(rng() % 30));
    }
  });
  join_within(sender, "the sender");
  Counts c = join_within(receiver, "the receiver to receive every message");
  EXPECT_EQ(c.received, n);
  for (int i = 0; i < n; ++i) {
    ASSERT_EQ(seen[static_cast<std::size_t>(i)].load(), 1) << "message " << i;
    ASSERT_TRUE(msgs[static_cast<std::size_t>(i)].done());
  }
  EXPECT_GT(c.timeouts, 0);  // the deadline did pass with nothing queued
  rt.stop();
}

// The same on a QueuePort fed by a plain thread: the hand-over and the deadline meet under the
// port's lock.
TEST(WaitPortUntil, QueuePortArrivalsFromAPlainThreadRacingTheDeadline) {
  Runtime rt(two_cores());
  QueuePort port;
  int n = testing::stress(20000, 3000);  // not a constant: captured by the lambdas
  std::vector<ValueMsg> msgs(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) msgs[static_cast<std::size_t>(i)].value = i;
  std::vector<int> seen(static_cast<std::size_t>(n));
  std::atomic<long> progress{0};
  auto receiver = rt.spawn(0, [&port, &seen, &progress, n](LwThread&) -> Task<long> {
    std::minstd_rand rng(3);
    long received = 0, timeouts = 0;
    while (received < n) {
      Message* m = co_await wait_port_for(port, absl::Microseconds(rng() % 40));
      if (m == nullptr) {
        ++timeouts;
        continue;
      }
      ++seen[static_cast<std::size_t>(static_cast<ValueMsg*>(m)->value)];
      ++received;
      progress.store(received, std::memory_order_release);
      reply_msg(*m, 0);
    }
    co_return timeouts;
  });
  std::thread sender([&] {
    std::minstd_rand rng(9);
    int i = 0;
    for (ValueMsg& m : msgs) {
      send_msg(port, m);
      if (rng() % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 30));
      // Once a pause longer than any deadline: the receiver does time out.
      if (++i == n / 2) {
        while (progress.load(std::memory_order_acquire) < i) std::this_thread::yield();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  });
  sender.join();
  long timeouts = join_within(receiver, "the receiver to receive every message");
  for (int i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<std::size_t>(i)], 1) << "message " << i;
  EXPECT_GT(timeouts, 0);
  port.close();
  rt.stop();
}

// =================================================================================================
// JoinHandle::cancel()
// =================================================================================================

// Parked in do_msg on a message queued at a thread on the other core: the abort crosses, the
// message is taken out of that queue and replied -ECANCELED, once.
TEST(Cancel, ParkedInDoMsgToAPortOnAnotherCore) {
  Runtime rt(two_cores());
  auto holder = rt.spawn(1, never_serves);
  std::atomic<bool> parked{false};
  auto h = rt.spawn(0, [&](LwThread&) -> Task<int> {
    ValueMsg m;
    m.set_abortable(true);
    auto pending = do_msg(holder.port(), m);
    parked.store(true, std::memory_order_release);
    int r = co_await pending;
    co_return m.done() ? r : -1000;
  });
  yield_until(parked);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));  // let it park
  h.cancel();
  h.cancel();  // idempotent
  EXPECT_EQ(join_within(h, "the cancelled do_msg"), -ECANCELED);
  EXPECT_TRUE(h.cancel_requested());
  rt.stop(StopMode::kCancel);
}

// The holder on the other core has taken the request: the abort reaches its on_abort, which
// replies at once.
TEST(Cancel, ParkedInDoMsgTakenByAServerThatHonoursAborts) {
  Runtime rt(two_cores());
  std::atomic<int> replied{0};
  std::atomic<bool> taken{false};
  auto server = rt.spawn(1, [&replied, &taken](LwThread& self) -> Task<void> {
    self.port().on_abort([&replied](Message& m) {
      replied.fetch_add(1);
      reply_msg(m, -ECANCELED);
    });
    while (Message* m = co_await wait_port(self.port())) {
      (void)m;  // kept: answered only by the abort
      taken.store(true, std::memory_order_release);
    }
  });
  auto h = rt.spawn(0, [&](LwThread&) -> Task<int> {
    ValueMsg m;
    m.set_abortable(true);
    co_return co_await do_msg(server.port(), m);
  });
  yield_until(taken);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));  // parked, most likely
  h.cancel();
  EXPECT_EQ(join_within(h, "the cancelled do_msg"), -ECANCELED);
  EXPECT_EQ(replied.load(), 1);
  rt.stop(StopMode::kCancel);
}

TEST(Cancel, ParkedInWaitPort) {
  Runtime rt(two_cores());
  auto h = rt.spawn(1, [](LwThread& self) -> Task<int> {
    int served = 0;
    while (Message* m = co_await wait_port(self.port())) {
      reply_msg(*m, 1);
      ++served;
    }
    // Cancelled: its port refuses from now on.
    ValueMsg late;
    int r = co_await do_msg(self.port(), late);
    co_return r == -ECANCELED ? served : -1;
  });
  ValueMsg m;
  {
    Watchdog wd("a reply from the server before the cancel", kLimit);
    EXPECT_EQ(do_msg_blocking(h.port(), m), 1);
  }
  h.cancel();
  EXPECT_EQ(join_within(h, "the cancelled server"), 1);
  ValueMsg after;
  EXPECT_EQ(do_msg_blocking(h.port(), after), -ECANCELED);
  rt.stop();
}

TEST(Cancel, ParkedInAQueuePortOfItsOwnAndInWaitPortUntil) {
  Runtime rt(two_cores());
  QueuePort own;
  auto a = rt.spawn(0, [&own](LwThread&) -> Task<bool> {
    Message* m = co_await wait_port(own);
    co_return m == nullptr;
  });
  auto b = rt.spawn(1, [](LwThread& self) -> Task<bool> {
    Message* m = co_await wait_port_until(self.port(), absl::Now() + absl::Hours(1));
    co_return m == nullptr;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  a.cancel();
  b.cancel();
  EXPECT_TRUE(join_within(a, "the cancelled wait_port on a QueuePort"));
  EXPECT_TRUE(join_within(b, "the cancelled wait_port_until"));
  EXPECT_FALSE(own.closed());  // a port of your own is not the thread's: left alone
  own.close();
  rt.stop();
}

TEST(Cancel, Sleeping) {
  Runtime rt(two_cores());
  std::atomic<bool> asleep{false};
  auto h = rt.spawn(1, [&asleep](LwThread&) -> Task<int> {
    asleep.store(true);
    absl::Time start = absl::Now();
    co_await sleep_for(absl::Hours(1));
    // Later sleeps do not wait either.
    co_await sleep_for(absl::Hours(1));
    co_return absl::Now() - start < absl::Seconds(20) ? 1 : 0;
  });
  yield_until(asleep);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  h.cancel();
  EXPECT_EQ(join_within(h, "the cancelled sleeper"), 1);
  rt.stop();
}

// Cancellation reaches the Tasks a thread co_awaits, and the tasks when_all runs.
TEST(Cancel, ReachesNestedTasksAndWhenAll) {
  Runtime rt(two_cores());
  std::atomic<bool> started{false};
  auto h = rt.spawn(0, [&started](LwThread&) -> Task<int> {
    auto nap = []() -> Task<int> {
      co_await sleep_for(absl::Hours(1));
      co_return (co_await cancel_requested()) ? 1 : 0;
    };
    started.store(true);
    auto [x, y] = co_await when_all(nap(), nap());
    int z = co_await nap();
    co_return x + y + z;
  });
  yield_until(started);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  h.cancel();
  EXPECT_EQ(join_within(h, "the cancelled nested sleeps"), 3);
  rt.stop();
}

TEST(Cancel, WhenAnyUnderCancelAbortsEverything) {
  Runtime rt(two_cores());
  auto s0 = rt.spawn(0, never_serves);
  auto s1 = rt.spawn(1, never_serves);
  std::atomic<bool> sent{false};
  auto h = rt.spawn(0, [&](LwThread&) -> Task<int> {
    ValueMsg a, b;
    sent.store(true);
    AnyResult r = co_await when_any(AnyMsg(s0.port(), a), AnyMsg(s1.port(), b));
    bool ok = r.sent == 2 && r.index < 2 && r.result == -ECANCELED && a.result() == -ECANCELED &&
              b.result() == -ECANCELED;
    // Under cancellation from the start: sent and aborted at once.
    ValueMsg c, d;
    AnyResult again = co_await when_any(AnyMsg(s0.port(), c), AnyMsg(s1.port(), d));
    ok = ok && again.result == -ECANCELED && c.done() && d.done();
    co_return ok ? 1 : 0;
  });
  yield_until(sent);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  h.cancel();
  EXPECT_EQ(join_within(h, "the cancelled when_any"), 1);
  rt.stop(StopMode::kCancel);
}

// Cancelled before it starts: its core is busy, so the cancel is there before the thread runs.
TEST(Cancel, BeforeItStarts) {
  Runtime rt(two_cores());
  std::atomic<bool> go{false};
  auto blocker = rt.spawn(1, [&go](LwThread&) -> Task<void> {
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    co_return;
  });
  auto h = rt.spawn(1, [](LwThread& self) -> Task<int> {
    bool seen = self.cancel_requested() && (co_await cancel_requested());
    co_await sleep_for(absl::Hours(1));            // does not wait
    Message* m = co_await wait_port(self.port());  // nor does this
    co_return seen&& m == nullptr ? 1 : 0;
  });
  h.cancel();
  go.store(true, std::memory_order_release);
  EXPECT_EQ(join_within(h, "the thread cancelled before it started"), 1);
  join_within(blocker, "the blocker");
  rt.stop();
}

TEST(Cancel, AfterItEndedAndAfterStop) {
  Runtime rt(two_cores());
  auto h = rt.spawn(1, [](LwThread&) -> Task<int> { co_return 5; });
  {
    Watchdog wd("the thread to end", kLimit);
    while (!h.done()) std::this_thread::yield();
  }
  h.cancel();  // nothing to cancel
  EXPECT_EQ(join_within(h, "the ended thread"), 5);
  auto parked = rt.spawn(0, never_serves);
  rt.stop(StopMode::kCancel);
  parked.cancel();  // destroyed by stop: harmless
  EXPECT_THROW(parked.join(), ThreadCancelled);
  JoinHandle<void> empty;
  empty.cancel();
}

// Cancel from another core and from a plain thread while the thread is ending, many times.
TEST(Cancel, ConcurrentWithTheThreadEnding) {
  Runtime rt(two_cores());
  const int rounds = testing::stress(3000, 300);
  std::minstd_rand rng(1);
  long cancelled_seen = 0;
  for (int i = 0; i < rounds; ++i) {
    unsigned work = rng() % 4;
    auto h = rt.spawn(static_cast<int>(rng() % 2), [work](LwThread&) -> Task<int> {
      for (unsigned k = 0; k < work; ++k) co_await yield_now();
      co_await sleep_for(absl::Microseconds(work * 5));
      co_return (co_await cancel_requested()) ? 1 : 0;
    });
    // One canceller on a core, one on a plain thread, both racing the end.
    auto from_core = rt.spawn(static_cast<int>(rng() % 2), [&h](LwThread&) -> Task<void> {
      h.cancel();
      co_return;
    });
    std::thread plain([&h] { h.cancel(); });
    plain.join();
    cancelled_seen += join_within(h, "a thread cancelled while it ends");
    join_within(from_core, "the canceller on a core");
  }
  EXPECT_GE(cancelled_seen, 0);
  rt.stop();
}

}  // namespace
}  // namespace msgport
