// The runtime's counters: a thread port's and the device port's after known sequences, and the
// one call that takes all of a core's counters at once (Runtime::snapshot / Core::snapshot),
// with the io_uring features the core and its device port run with.
#include <gtest/gtest.h>
#include <msgport/io/io.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/timer.h>
#include <msgport/runtime/yield.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/test_support.h"
#include "tests/watchdog.h"

namespace msgport {
namespace {

using io::IoMsg;
using io::IoOp;
using testing::ValueMsg;
using testing::Watchdog;

RuntimeOptions two_cores() {
  RuntimeOptions o;
  o.cores = 2;
  return o;
}

// Busy until three requests wait in its queue, then serves until its port is closed.
Task<int> busy_then_serve(LwThread& self) {
  while (self.port().size() < 3) co_await yield_now();
  int served = 0;
  while (Message* m = co_await wait_port(self.port())) {
    reply_msg(*m, 1);
    ++served;
  }
  co_return served;
}

Task<void> requests(ThreadPort& to, int n) {
  std::vector<ValueMsg> m(static_cast<std::size_t>(n));
  for (ValueMsg& one : m) send_msg(to, one);
  for (ValueMsg& one : m) co_await wait_msg(one);
}

// One request at a time, on the server's core: each goes straight to the server waiting in
// wait_port (the yield lets it get back there after the reply resumed this sender directly).
Task<void> one_by_one(ThreadPort& to, int n) {
  for (int i = 0; i < n; ++i) {
    ValueMsg m;
    co_await do_msg(to, m);
    co_await yield_now();
  }
}

TEST(ThreadPortCounters, QueuedRequestsFromEitherCoreAreCountedAsync) {
  Watchdog wd("requests to a busy thread");
  Runtime rt(two_cores());
  auto server = rt.spawn(1, busy_then_serve);
  rt.block_on(requests(server.port(), 3));  // from core 0: all three wait in the queue
  // From core 1 itself: the server now waits in wait_port, so these go straight to it.
  rt.spawn(1, one_by_one(server.port(), 2)).join();
  ThreadPort::Counters c = server.port().counters();
  EXPECT_EQ(c.begun_cross_core, 3u);
  EXPECT_EQ(c.begun_local, 2u);
  EXPECT_EQ(c.async, 5u);
  EXPECT_EQ(c.queued, 3u);
  EXPECT_EQ(c.sync, 0u);
  EXPECT_EQ(c.refused + c.aborted + c.cancelled + c.replies, 0u);
  rt.stop();
  EXPECT_EQ(server.join(), 5);
}

// A thread that never serves its port (it sleeps until stop cancels it).
Task<void> never_serves(LwThread&) { co_await sleep_for(absl::Hours(1)); }

TEST(ThreadPortCounters, AbortedAndCancelledRequestsAreCounted) {
  Watchdog wd("requests to a thread that never serves");
  Runtime rt(two_cores());
  auto sleeper = rt.spawn(1, never_serves);
  ValueMsg kept;  // still queued when stop cancels
  int aborted = rt.block_on([](ThreadPort& to, ValueMsg& kept) -> Task<int> {
    ValueMsg gone;
    gone.set_abortable(true);
    send_msg(to, kept);
    send_msg(to, gone);
    // Once both wait in the queue (an abort sent before would have it refused on arrival).
    while (to.counters().queued < 2) co_await sleep_for(absl::Microseconds(100));
    abort_msg(gone);
    co_return co_await wait_msg(gone);
  }(sleeper.port(), kept));
  EXPECT_EQ(aborted, -ECANCELED);
  ThreadPort::Counters c = sleeper.port().counters();
  EXPECT_EQ(c.async, 2u);
  EXPECT_EQ(c.queued, 2u);
  EXPECT_EQ(c.aborted, 1u);
  EXPECT_EQ(c.cancelled, 0u);
  rt.stop(StopMode::kCancel);
  EXPECT_TRUE(kept.done());
  EXPECT_EQ(kept.result(), -ECANCELED);
  c = sleeper.port().counters();
  EXPECT_EQ(c.cancelled, 1u) << "stop(kCancel) answered the one still queued";
  EXPECT_EQ(c.aborted, 1u);
  EXPECT_THROW(sleeper.join(), ThreadCancelled);
}

// Closes its own port, then waits to be told to end.
Task<void> closes_its_port(LwThread& self, std::atomic<bool>& end) {
  self.port().close();
  while (!end.load()) co_await sleep_for(absl::Milliseconds(1));
}

TEST(ThreadPortCounters, RefusalsOnItsCoreAndAfterStopAreCounted) {
  Watchdog wd("requests to a closed port");
  Runtime rt(two_cores());
  std::atomic<bool> end{false};
  auto closed = rt.spawn(1, [&end](LwThread& self) { return closes_its_port(self, end); });
  while (!closed.port().closed()) std::this_thread::yield();
  ValueMsg a;
  EXPECT_EQ(do_msg_blocking(closed.port(), a), -ECANCELED);  // refused on core 1
  EXPECT_EQ(closed.port().counters().refused, 1u);
  end.store(true);
  closed.join();
  rt.stop();
  ValueMsg b;
  EXPECT_EQ(do_msg_blocking(closed.port(), b), -ECANCELED);  // refused here: the core stopped
  ThreadPort::Counters c = closed.port().counters();
  EXPECT_EQ(c.refused, 2u);
  EXPECT_EQ(c.async, 0u);
}

TEST(ThreadPortCounters, RepliesComingBackToAThreadPortAreCounted) {
  Watchdog wd("replies to a thread port");
  Runtime rt(two_cores());
  auto echo = rt.spawn(0, [](LwThread& self) -> Task<void> {
    while (Message* m = co_await wait_port(self.port())) reply_msg(*m, 3);
  });
  auto asker = rt.spawn(1, [&echo](LwThread& self) -> Task<int> {
    ValueMsg m[2];
    int sum = 0;
    for (ValueMsg& one : m) {
      one.set_reply_port(&self.port());  // the reply comes back to the asker's own port
      send_msg(echo.port(), one);
      Message* back = co_await wait_port(self.port());
      sum += back->result();
    }
    co_return sum;
  });
  EXPECT_EQ(asker.join(), 6);
  EXPECT_EQ(asker.port().counters().replies, 2u);
  EXPECT_EQ(asker.port().counters().async, 0u);
  EXPECT_EQ(echo.port().counters().async, 2u);
  rt.stop(StopMode::kCancel);
}

// ---- the device port ---------------------------------------------------------------------------

struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) != 0) std::abort();
  }
  ~SocketPair() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
};

// On the core: one inline send, one nop through the ring, one recv aborted in the kernel.
Task<std::vector<int>> device_sequence(int fd) {
  io::DevicePort& port = io::device_port();
  std::vector<int> r;
  char byte = 'x';
  IoMsg send;
  send.op = IoOp::kSend;
  send.fd = fd;
  send.buf = &byte;
  send.len = 1;
  r.push_back(co_await do_msg(port, send));  // room in the socket: inline
  IoMsg nop;
  r.push_back(co_await do_msg(port, nop));  // always through the ring
  char in;
  IoMsg recv;
  recv.op = IoOp::kRecv;
  recv.fd = fd;  // nothing ever arrives on this end
  recv.buf = &in;
  recv.len = 1;
  send_msg(port, recv);
  co_await sleep_for(absl::Milliseconds(2));
  abort_msg(recv);
  r.push_back(co_await wait_msg(recv));
  co_return r;
}

TEST(DevicePortCounters, AKnownSequenceIsCountedAndPrinted) {
  Watchdog wd("device port operations");
  Runtime rt(two_cores());
  SocketPair sp;
  auto r = rt.block_on(device_sequence(sp.fd[0]));
  EXPECT_EQ(r, (std::vector<int>{1, 0, -ECANCELED}));
  // Sent from a plain thread: refused at once (-EXDEV), counted.
  io::DevicePort* port =
      rt.block_on([]() -> Task<io::DevicePort*> { co_return &io::device_port(); }());
  IoMsg stray;
  EXPECT_EQ(do_msg_blocking(*port, stray), -EXDEV);
  auto c = rt.block_on(
      []() -> Task<io::DevicePort::Counters> { co_return io::device_port().counters(); }());
  EXPECT_EQ(c.inline_done, 1u);
  EXPECT_EQ(c.async, 2u);
  EXPECT_EQ(c.refused, 1u);
  EXPECT_EQ(c.aborted, 1u);
  EXPECT_EQ(c.cancelled, 1u);
  EXPECT_EQ(c.replied, 2u) << "every message it took was replied";
  EXPECT_EQ(c.completed, 2u);
  std::ostringstream os;
  os << c;
  EXPECT_EQ(os.str(), c.to_string());
  EXPECT_NE(c.to_string().find("inline=1 async=2 refused=1"), std::string::npos) << c;
  // The same, by name, in the core's snapshot.
  CoreSnapshot s = rt.snapshot(0);
  EXPECT_EQ(s.device, "device");
  EXPECT_EQ(s.device_counter("inline"), 1u);
  EXPECT_EQ(s.device_counter("async"), 2u);
  EXPECT_EQ(s.device_counter("aborted"), 1u);
  EXPECT_EQ(s.device_counter("replied"), 2u);
  rt.stop();
}

// ---- the snapshot ------------------------------------------------------------------------------

TEST(CoreSnapshot, OneCallTakesTheCoresItsDevicesAndItsThreadPortsCounters) {
  Watchdog wd("snapshots of a running core");
  Runtime rt(two_cores());
  auto server = rt.spawn(1, busy_then_serve);
  auto idle = rt.spawn(1, never_serves);
  rt.block_on(requests(server.port(), 3));
  // No device port on core 1 yet: the snapshot has no device section.
  CoreSnapshot before = rt.snapshot(1);
  EXPECT_TRUE(before.device.empty());
  rt.spawn(1,
           []() -> Task<void> {
             (void)io::device_port();
             co_return;
           }())
      .join();
  CoreSnapshot s = rt.snapshot(1);
  EXPECT_EQ(s.core, 1);
  EXPECT_EQ(s.device, "device");
  EXPECT_EQ(s.counters.begun_cross_core, 3u);
  EXPECT_EQ(s.counters.queued, 3u);
  ASSERT_EQ(s.threads.size(), 2u) << "the two threads living on core 1";
  const CoreSnapshot::Thread* srv = nullptr;
  for (const auto& t : s.threads) {
    if (t.port.begun_cross_core == 3) srv = &t;
  }
  ASSERT_NE(srv, nullptr) << s;
  EXPECT_EQ(srv->port.async, 3u);
  EXPECT_EQ(srv->queued_now, 0u);
  EXPECT_EQ(rt.snapshot(0).threads.size(), 0u) << "core 0 has none now";
  std::string text = s.to_string();
  EXPECT_NE(text.find("core 1 (cpu "), std::string::npos) << text;
  EXPECT_NE(text.find("begun_cross_core=3"), std::string::npos) << text;
  EXPECT_NE(text.find("device: inline=0"), std::string::npos) << text;
  EXPECT_NE(text.find("thread " + std::to_string(srv->id) + ": begun_local=0"), std::string::npos)
      << text;
  std::ostringstream os;
  os << s;
  EXPECT_EQ(os.str(), text);
  // On the core itself it is taken at once; from another core it refuses to block.
  auto here = rt.block_on([](Runtime& rt) -> Task<int> { co_return rt.snapshot(0).core; }(rt));
  EXPECT_EQ(here, 0);
  bool threw = rt.block_on([](Runtime& rt) -> Task<bool> {
    try {
      (void)rt.snapshot(1);
    } catch (const std::logic_error&) {
      co_return true;
    }
    co_return false;
  }(rt));
  EXPECT_TRUE(threw);
  EXPECT_THROW((void)rt.core(1).snapshot(), std::logic_error) << "off the core while it runs";
  EXPECT_THROW((void)rt.snapshot(2), std::out_of_range);
  EXPECT_NE(rt.dump_snapshots().find("core 1 (cpu "), std::string::npos);
  rt.stop(StopMode::kCancel);
  // After stop the snapshot is taken here; the threads are gone, the counts stay.
  CoreSnapshot after = rt.snapshot(1);
  EXPECT_EQ(after.threads.size(), 0u);
  EXPECT_EQ(after.counters.begun_cross_core, 3u);
  EXPECT_EQ(server.join(), 3);
  EXPECT_THROW(idle.join(), ThreadCancelled);
}

// Snapshots taken while another core sends: taken on the core, they race with nothing (TSan).
TEST(CoreSnapshot, SnapshotsWhileMessagesFlowAreConsistentPerPort) {
  Watchdog wd("snapshots under traffic");
  Runtime rt(two_cores());
  auto server = rt.spawn(1, [](LwThread& self) -> Task<void> {
    while (Message* m = co_await wait_port(self.port())) reply_msg(*m, 0);
  });
  std::atomic<bool> done{false};
  // The flag is a parameter: a coroutine lambda called at once must not capture (its closure
  // is gone when it first suspends).
  auto client = rt.spawn(0, [](ThreadPort& to, std::atomic<bool>& done) -> Task<void> {
    for (int i = 0; i < testing::stress(20000, 2000); ++i) {
      ValueMsg m;
      co_await do_msg(to, m);
    }
    done.store(true);
  }(server.port(), done));
  std::uint64_t last = 0;
  while (!done.load()) {
    CoreSnapshot s = rt.snapshot(1);
    ASSERT_EQ(s.threads.size(), 1u);
    EXPECT_GE(s.threads[0].port.async, last) << "counts only grow";
    last = s.threads[0].port.async;
    EXPECT_EQ(s.counters.begun_cross_core, s.threads[0].port.begun_cross_core)
        << "taken on the core: the core's sum and the port agree";
  }
  client.join();
  EXPECT_EQ(rt.snapshot(1).threads[0].port.async,
            static_cast<std::uint64_t>(testing::stress(20000, 2000)));
  rt.stop();
}

// ---- io_uring features -------------------------------------------------------------------------

TEST(CoreSnapshot, TheReportNamesTheIoUringFeaturesOnOrOff) {
  Watchdog wd("feature report");
  Runtime rt(two_cores());
  struct Probe {
    std::string features;
    bool send_zc;
    bool socket;
  };
  Probe p = rt.block_on([]() -> Task<Probe> {
    io::DevicePort& port = io::device_port();
    co_return Probe{port.features(), port.supports(IoOp::kSendZc), port.supports(IoOp::kSocket)};
  }());
  CoreSnapshot s = rt.snapshot(0);
  std::string text = s.to_string();
  for (const char* name :
       {"single_issuer", "defer_taskrun", "coop_taskrun", "registered_ring_fd", "nodrop", "ext_arg",
        "cqe_skip", "fast_poll", "msg_ring", "send_zc", "socket", "accept_multishot",
        "recv_multishot", "buf_ring", "link_timeout", "async_cancel"}) {
    bool on = s.has(name);
    EXPECT_NE(text.find(std::string(" ") + name + (on ? "=on" : "=off")), std::string::npos)
        << name << " in: " << text;
    // The port's own list names exactly the device features that are on.
    bool device_feature = std::string_view(name) == "send_zc" ||
                          std::string_view(name) == "accept_multishot" ||
                          std::string_view(name) == "buf_ring";
    if (device_feature) {
      EXPECT_EQ(p.features.find(name) != std::string::npos, on) << name << ": " << p.features;
    }
  }
  EXPECT_EQ(s.has("send_zc"), p.send_zc) << "the report agrees with the probe";
  EXPECT_EQ(s.has("socket"), p.socket);
  EXPECT_EQ(s.has("registered_ring_fd"), s.ring.find("REGISTERED_FD") != std::string::npos);
  EXPECT_EQ(s.has("single_issuer"), s.ring.find("SINGLE_ISSUER") != std::string::npos);
  EXPECT_FALSE(s.has("no_such_feature"));
  // Every core that runs has a ring that cannot lose completions, and async cancel (msgport's
  // aborts and stop rely on both; any kernel that runs it has them).
  EXPECT_TRUE(s.has("nodrop"));
  EXPECT_TRUE(s.has("async_cancel"));
  rt.stop();
}

}  // namespace
}  // namespace msgport
