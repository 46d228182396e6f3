// std::chrono wherever a duration or a time point is taken (runtime/chrono.h): every overload
// behaves as its absl form.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <msgport/io/io.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/chrono.h>
#include <msgport/runtime/mutex.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/select.h>
#include <msgport/runtime/semaphore.h>
#include <msgport/runtime/timer.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ratio>
#include <string>
#include <thread>
#include <utility>

#include "tests/test_support.h"
#include "tests/watchdog.h"

namespace msgport {
namespace {

using namespace std::chrono_literals;
using testing::ValueMsg;
using testing::Watchdog;

RuntimeOptions two_cores() {
  RuntimeOptions o;
  o.cores = 2;
  return o;
}

// ---- the conversions ----------------------------------------------------------------------------

TEST(ChronoConversion, DurationsConvertExactlyAndSaturate) {
  EXPECT_EQ(to_absl(std::chrono::nanoseconds(7)), absl::Nanoseconds(7));
  EXPECT_EQ(to_absl(std::chrono::milliseconds(5)), absl::Milliseconds(5));
  EXPECT_EQ(to_absl(std::chrono::hours(2)), absl::Hours(2));
  EXPECT_EQ(to_absl(std::chrono::duration<double, std::milli>(2.5)), absl::Microseconds(2500));
  EXPECT_EQ(to_absl(std::chrono::duration<int, std::deci>(3)), absl::Milliseconds(300));
  EXPECT_EQ(to_absl(std::chrono::days(1)), absl::Hours(24));
  EXPECT_EQ(to_absl(std::chrono::duration<std::int64_t, std::ratio<1, 3>>(1)),
            absl::Seconds(1) / 3);
  // Beyond int64 nanoseconds: still finite and ordered, never wrapped.
  EXPECT_GT(to_absl(std::chrono::hours::max()), to_absl(std::chrono::nanoseconds::max()));
  EXPECT_EQ(to_absl(std::chrono::duration<double>(1e300)), absl::InfiniteDuration());
}

TEST(ChronoConversion, TimePointsMeanTheSameInstant) {
  auto sys = std::chrono::system_clock::now();
  EXPECT_EQ(to_absl(sys), absl::FromChrono(sys));
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(sys);
  EXPECT_EQ(to_absl(secs), absl::FromUnixSeconds(secs.time_since_epoch().count()));
  // steady_clock: relative to now. One second ahead is about one second after absl::Now().
  absl::Time before = absl::Now();
  absl::Time t = to_absl(std::chrono::steady_clock::now() + 1s);
  absl::Time after = absl::Now();
  EXPECT_GE(t, before + absl::Milliseconds(990));
  EXPECT_LE(t, after + absl::Milliseconds(1010));
  // The farthest steady time point converts without overflowing into the past.
  EXPECT_GT(to_absl(std::chrono::steady_clock::time_point::max()), absl::Now() + absl::Hours(1));
}

TEST(ChronoConversion, RuntimeOptionsTakeEitherForm) {
  RuntimeOptions o;
  EXPECT_EQ(absl::Duration(o.poll_before_sleep), absl::Microseconds(50));
  o.poll_before_sleep = 7us;
  o.stop_grace = std::chrono::milliseconds(250);
  EXPECT_EQ(o.poll_before_sleep.get(), absl::Microseconds(7));
  EXPECT_EQ(absl::Duration(o.stop_grace), absl::Milliseconds(250));
  o.stop_grace = absl::Seconds(3);
  EXPECT_EQ(absl::FormatDuration(o.stop_grace), "3s");
}

TEST(ChronoConversion, IoMsgTimeoutTakesAChronoDuration) {
  io::IoMsg m;
  m.set_timeout(std::chrono::duration<double, std::milli>(2.5));
  EXPECT_EQ(m.timeout(), absl::Microseconds(2500));
  m.set_timeout(std::chrono::seconds(4));
  EXPECT_EQ(m.timeout(), absl::Seconds(4));
}

// ---- sleeps -----------------------------------------------------------------------------------

TEST(ChronoSleep, SleepForAChronoDurationSleepsAtLeastThatLong) {
  Watchdog wd("sleeps of a few milliseconds");
  Runtime rt(two_cores());
  using Took = std::pair<std::chrono::nanoseconds, std::chrono::nanoseconds>;
  Took took = rt.block_on([]() -> Task<Took> {
    auto start = std::chrono::steady_clock::now();
    co_await sleep_for(std::chrono::milliseconds(5));
    auto mid = std::chrono::steady_clock::now();
    co_await sleep_for(std::chrono::duration<double, std::milli>(3.5));
    co_return Took{mid - start, std::chrono::steady_clock::now() - mid};
  }());
  EXPECT_GE(took.first, 5ms);
  EXPECT_GE(took.second, 3500us) << "a floating-point chrono duration too";
  rt.stop();
}

TEST(ChronoSleep, SleepUntilAChronoTimePointWakesNoEarlier) {
  Watchdog wd("sleeps until chrono deadlines");
  Runtime rt(two_cores());
  bool ok = rt.block_on([]() -> Task<bool> {
    auto steady_deadline = std::chrono::steady_clock::now() + 5ms;
    co_await sleep_until(steady_deadline);
    bool steady_ok = std::chrono::steady_clock::now() >= steady_deadline;
    auto sys_deadline = std::chrono::system_clock::now() + 5ms;
    co_await sleep_until(sys_deadline);
    bool sys_ok = absl::Now() >= absl::FromChrono(sys_deadline);
    co_return steady_ok&& sys_ok;
  }());
  EXPECT_TRUE(ok);
  rt.stop();
}

TEST(ChronoSleep, APastChronoDeadlineDoesNotSuspend) {
  Watchdog wd("sleeps with past deadlines");
  Runtime rt(two_cores());
  std::uint64_t fired = rt.block_on([]() -> Task<std::uint64_t> {
    std::uint64_t before = this_core().counters().timers_fired;
    co_await sleep_until(std::chrono::steady_clock::now() - 1s);
    co_await sleep_until(std::chrono::system_clock::time_point{});  // 1970
    co_await sleep_for(-3ms);
    co_return this_core().counters().timers_fired - before;
  }());
  EXPECT_EQ(fired, 0u) << "no timer was armed";
  rt.stop();
}

// ---- deadlines on messages ---------------------------------------------------------------------

TEST(ChronoDeadline, APastSteadyDeadlineYieldsETIMEDOUT) {
  Watchdog wd("do_msg_until with a past deadline");
  Runtime rt(two_cores());
  int r = rt.block_on([]() -> Task<int> {
    LocalPort nobody_serves;  // the request stays queued until the deadline aborts it
    ValueMsg m;
    int r = co_await do_msg_until(nobody_serves, m, std::chrono::steady_clock::now() - 1ms);
    nobody_serves.close();
    co_return r == m.result() ? r : 1;
  }());
  EXPECT_EQ(r, -ETIMEDOUT);
  rt.stop();
}

Task<void> doubler(LwThread& self) {
  while (Message* m = co_await wait_port(self.port())) {
    reply_msg(*m, static_cast<ValueMsg*>(m)->value * 2);
  }
}

TEST(ChronoDeadline, AFutureDeadlineOfEitherClockKeepsTheReply) {
  Watchdog wd("do_msg_until with future deadlines");
  Runtime rt(two_cores());
  auto server = rt.spawn(1, doubler);
  auto results = rt.block_on([](ThreadPort& to) -> Task<std::pair<int, int>> {
    ValueMsg a, b;
    a.value = 4;
    b.value = 5;
    int ra = co_await do_msg_until(to, a, std::chrono::system_clock::now() + 10s);
    int rb = co_await do_msg_until(to, b, std::chrono::steady_clock::time_point::max());
    co_return std::pair{ra, rb};
  }(server.port()));
  EXPECT_EQ(results.first, 8);
  EXPECT_EQ(results.second, 10) << "the farthest steady deadline is far away, not in the past";
  rt.stop(StopMode::kCancel);
}

TEST(ChronoDeadline, ASystemClockDeadlineExpires) {
  Watchdog wd("do_msg_until expiring on a system_clock deadline");
  Runtime rt(two_cores());
  auto r = rt.block_on([]() -> Task<std::pair<int, std::chrono::nanoseconds>> {
    LocalPort nobody_serves;
    ValueMsg m;
    auto start = std::chrono::steady_clock::now();
    int r = co_await do_msg_until(nobody_serves, m, std::chrono::system_clock::now() + 5ms);
    auto took = std::chrono::steady_clock::now() - start;
    nobody_serves.close();
    co_return std::pair{r, took};
  }());
  EXPECT_EQ(r.first, -ETIMEDOUT);
  EXPECT_GE(r.second, 4ms) << "not before its deadline (less 1 ms for the two clocks' skew)";
  rt.stop();
}

// ---- the runtime's settings --------------------------------------------------------------------

Task<int> echo_once(ThreadPort& to) {
  ValueMsg m;
  m.value = 1;
  co_return co_await do_msg(to, m);
}

// A core told (in chrono) to poll for an hour never sleeps between messages 3 ms apart; one told
// to poll for zero sleeps between each.
TEST(ChronoSettings, PollBeforeSleepTakesAChronoDuration) {
  Watchdog wd("round trips to a polling core");
  RuntimeOptions o = two_cores();
  o.poll_before_sleep = std::chrono::hours(1);
  Runtime rt(o);
  auto server = rt.spawn(1, doubler);
  auto sleeps_over_gaps = [&] {
    rt.block_on(echo_once(server.port()));  // core 1 is in its loop now, with the new setting
    std::uint64_t before = rt.counters()[1].sleeps;
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(3ms);
      rt.block_on(echo_once(server.port()));
    }
    return rt.counters()[1].sleeps - before;
  };
  EXPECT_EQ(sleeps_over_gaps(), 0u) << "polling for an hour (RuntimeOptions, std::chrono)";
  rt.core(1).set_poll_before_sleep(std::chrono::microseconds(0));
  EXPECT_GE(sleeps_over_gaps(), 4u) << "polling for zero (Core::set_poll_before_sleep, chrono)";
  rt.stop(StopMode::kCancel);
}

TEST(ChronoSettings, StopGraceTakesAChronoDuration) {
  auto work = [](Message& m) { return static_cast<ValueMsg&>(m).value; };
  SerializedPort<decltype(work)> port(work);
  RuntimeOptions o = two_cores();
  o.stop_grace = std::chrono::milliseconds(50);
  Runtime rt(o);
  auto server = rt.spawn(1, port.serve());  // serves a port nobody closes: stop must cancel it
  Watchdog wd("stop(kDrain) with a 50 ms grace");
  ::testing::internal::CaptureStderr();
  auto start = std::chrono::steady_clock::now();
  rt.stop(StopMode::kDrain);
  auto took = std::chrono::steady_clock::now() - start;
  std::string said = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(said.find("after 50ms"), std::string::npos) << said;
  EXPECT_GE(took, 50ms);
  EXPECT_LT(took, 5s) << "the grace was 50 ms, not the default 10 s";
  EXPECT_THROW(server.join(), ThreadCancelled);
}

// ---- the primitives' deadlines
// -------------------------------------------------------------------

TEST(ChronoPrimitives, LockUntilAndAcquireUntilTakeChronoDeadlines) {
  Watchdog wd("lock_until / acquire_until with chrono deadlines");
  Runtime rt(two_cores());
  auto r = rt.block_on([]() -> Task<std::pair<int, int>> {
    Mutex mu;
    co_await mu.lock();
    auto t0 = std::chrono::steady_clock::now();
    // Held: the deadline passes, and the request is never granted.
    bool locked = co_await mu.lock_until(std::chrono::steady_clock::now() + 3ms);
    bool waited = std::chrono::steady_clock::now() - t0 >= 3ms;
    mu.unlock();
    // Free: granted at once, whatever the deadline.
    bool free_locked = co_await mu.lock_until(std::chrono::system_clock::now() + 1h);
    if (free_locked) mu.unlock();
    Semaphore sem(0);
    bool acquired = co_await sem.acquire_until(1, std::chrono::steady_clock::now() + 2ms);
    sem.release(1);
    bool then = co_await sem.acquire_until(1, std::chrono::steady_clock::now() + 1h);
    co_return std::pair<int, int>{!locked && waited && free_locked, !acquired && then};
  }());
  EXPECT_EQ(r.first, 1) << "lock_until: timed out while held, granted when free";
  EXPECT_EQ(r.second, 1) << "acquire_until: timed out with no permits, granted with one";
  rt.stop();
}

TEST(ChronoPrimitives, WaitPortForAndUntilTakeChrono) {
  Watchdog wd("wait_port_for / wait_port_until with chrono");
  Runtime rt(two_cores());
  auto r = rt.block_on([]() -> Task<std::pair<int, int>> {
    LocalPort port;
    auto t0 = std::chrono::steady_clock::now();
    Message* none = co_await wait_port_for(port, 3ms);
    bool waited = std::chrono::steady_clock::now() - t0 >= 3ms;
    ValueMsg m;
    send_msg(port, m);
    Message* got = co_await wait_port_until(port, std::chrono::steady_clock::now() + 1h);
    if (got != nullptr) reply_msg(*got, 7);
    int reply = co_await wait_msg(m);
    port.close();
    co_return std::pair<int, int>{none == nullptr && waited, got == &m && reply == 7};
  }());
  EXPECT_EQ(r.first, 1) << "wait_port_for: nothing queued, nullptr after the duration";
  EXPECT_EQ(r.second, 1) << "wait_port_until: the queued message at once";
  rt.stop();
}

}  // namespace
}  // namespace msgport
