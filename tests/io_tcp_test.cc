// TCP over device ports on real loopback sockets: echo round trips, many clients at once, IPv6,
// the multishot recv running its buffer ring dry and re-arming, and the bad inputs (a port in use,
// a closed port, a peer that resets, a client that never reads, a huge send, EMFILE on accept):
// each a clear error, nothing replied twice, the other connections unaffected.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <msgport/io/io.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/timer.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tests/test_support.h"
#include "tests/watchdog.h"

namespace msgport::io {
namespace {

using msgport::testing::Watchdog;

RuntimeOptions two_cores() {
  RuntimeOptions o;
  o.cores = 2;
  return o;
}

SocketAddress loopback(std::uint16_t port = 0) { return *SocketAddress::parse("127.0.0.1", port); }

// A plain listening socket on a loopback port of the kernel's choosing (no SO_REUSEPORT): it
// completes connections into its backlog and never accepts. Its address goes to *at.
int plain_listener(SocketAddress* at) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SocketAddress any = loopback();
  if (fd < 0 || ::bind(fd, any.get(), any.size()) != 0 || ::listen(fd, 4) != 0) std::abort();
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  *at = SocketAddress::of(reinterpret_cast<sockaddr*>(&ss), len);
  return fd;
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

// Echoes what it receives until the peer finishes; returns the bytes echoed.
Task<long> echo(TcpStream s) {
  long n = 0;
  for (;;) {
    Received r = co_await s.receive();
    if (!r) break;
    int sent = co_await s.send(r.bytes());
    if (sent < 0) break;
    n += sent;
  }
  co_await s.close();
  co_return n;
}

// Accepts `conns` connections, echoing each in a thread of its own on this core.
Task<long> echo_server(Runtime& rt, TcpListener listener, int conns) {
  std::vector<JoinHandle<long>> handlers;
  for (int i = 0; i < conns; ++i) {
    absl::StatusOr<TcpStream> s = co_await listener.accept();
    if (!s.ok()) co_return -1;
    handlers.push_back(rt.spawn(this_core().id(), echo(std::move(*s))));
  }
  long total = 0;
  for (auto& h : handlers) total += co_await h;
  co_return total;
}

// Receives exactly `into.size()` bytes with recv (single-shot, into the caller's buffer).
Task<int> recv_exact(const TcpStream& s, std::span<std::byte> into) {
  std::size_t got = 0;
  while (got < into.size()) {
    int r = co_await s.recv(into.subspan(got));
    if (r <= 0) co_return r == 0 ? -ECONNRESET : r;
    got += static_cast<std::size_t>(r);
  }
  co_return static_cast<int>(got);
}

Task<int> ping_client(SocketAddress to, int rounds, int size) {
  auto c = co_await TcpStream::connect(to);
  if (!c.ok()) co_return -1;
  std::string out(static_cast<std::size_t>(size), 'x');
  std::string in(out.size(), '\0');
  int ok = 0;
  for (int i = 0; i < rounds; ++i) {
    out[0] = static_cast<char>('a' + i % 26);
    if (co_await c->send(as_bytes(out)) != size) break;
    if (co_await recv_exact(*c, std::as_writable_bytes(std::span(in.data(), in.size()))) != size) {
      break;
    }
    if (in == out) ++ok;
  }
  co_await c->shutdown();
  co_return ok;
}

TEST(Tcp, EchoRoundTripsAcrossCores) {
  Watchdog wd("an echo server and its client");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(loopback());
  ASSERT_TRUE(listener.ok()) << listener.status();
  SocketAddress at = listener->local_address();
  auto server = rt.spawn(0, echo_server(rt, std::move(*listener), 1));
  EXPECT_EQ(rt.spawn(1, ping_client(at, 1000, 64)).join(), 1000);
  EXPECT_EQ(server.join(), 64 * 1000);
  rt.stop();
}

TEST(Tcp, IPv6Loopback) {
  Watchdog wd("an echo over ::1");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(*SocketAddress::parse("::1", 0));
  if (!listener.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << listener.status();
  SocketAddress at = listener->local_address();
  EXPECT_EQ(at.to_string().front(), '[');
  auto server = rt.spawn(0, echo_server(rt, std::move(*listener), 1));
  EXPECT_EQ(rt.spawn(1, ping_client(at, 100, 64)).join(), 100);
  EXPECT_EQ(server.join(), 64 * 100);
  rt.stop();
}

TEST(Tcp, ManyClientsAtOnceEachEchoedIntact) {
  Watchdog wd("50 clients of one echo server");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(loopback());
  ASSERT_TRUE(listener.ok()) << listener.status();
  SocketAddress at = listener->local_address();
  const int clients = 50, rounds = 100;
  auto server = rt.spawn(0, echo_server(rt, std::move(*listener), clients));
  std::vector<JoinHandle<int>> cs;
  for (int i = 0; i < clients; ++i) cs.push_back(rt.spawn(i % 2, ping_client(at, rounds, 64)));
  for (auto& c : cs) EXPECT_EQ(c.join(), rounds);
  EXPECT_EQ(server.join(), long{clients} * rounds * 64);
  rt.stop();
}

TEST(TcpErrors, APortInUseAndAClosedPortAreClearErrors) {
  Watchdog wd("bind and connect errors");
  SocketAddress taken;
  int plain = plain_listener(&taken);
  auto l = TcpListener::bind(taken);
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().ToString().find("EADDRINUSE"), std::string::npos) << l.status();
  EXPECT_NE(l.status().ToString().find(taken.to_string()), std::string::npos) << l.status();
  ::close(plain);  // nothing listens there now
  Runtime rt(two_cores());
  auto refused = rt.block_on([](SocketAddress to) -> Task<std::string> {
    auto c = co_await TcpStream::connect(to);
    co_return c.ok() ? std::string("connected?") : c.status().ToString();
  }(taken));
  EXPECT_NE(refused.find("ECONNREFUSED"), std::string::npos) << refused;
  EXPECT_NE(refused.find(taken.to_string()), std::string::npos) << refused;
  EXPECT_FALSE(SocketAddress::parse("not-an-address", 1).ok());
  rt.stop();
}

// A peer that resets the connection: the server's receive says so; another connection to the same
// server goes on working.
TEST(TcpErrors, APeerThatResetsIsAnErrorAndTheOtherConnectionsGoOn) {
  Watchdog wd("a reset connection beside a healthy one");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(loopback());
  ASSERT_TRUE(listener.ok());
  SocketAddress at = listener->local_address();
  auto server = rt.spawn(0, echo_server(rt, std::move(*listener), 2));
  // The rude client: connects, sends, and resets (SO_LINGER 0) without reading.
  int rude = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(rude, at.get(), at.size()), 0);
  ASSERT_EQ(::send(rude, "hello", 5, 0), 5);
  linger lg{1, 0};
  setsockopt(rude, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  ::close(rude);
  EXPECT_EQ(rt.spawn(1, ping_client(at, 200, 64)).join(), 200);
  EXPECT_GE(server.join(), 200 * 64) << "the healthy connection was echoed in full";
  rt.stop();
}

TEST(TcpErrors, SendingToAPeerThatClosedIsEPIPEOrECONNRESET) {
  Watchdog wd("a send to a closed peer");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(loopback());
  ASSERT_TRUE(listener.ok());
  SocketAddress at = listener->local_address();
  auto server = rt.spawn(0, [](TcpListener l) -> Task<int> {
    auto s = co_await l.accept();
    if (!s.ok()) co_return -1;
    co_await s->close();  // the peer goes away at once
    co_return 0;
  }(std::move(*listener)));
  int r = rt.spawn(1,
                   [](SocketAddress to) -> Task<int> {
                     auto c = co_await TcpStream::connect(to);
                     if (!c.ok()) co_return 1;
                     co_await sleep_for(absl::Milliseconds(20));
                     std::string chunk(64 * 1024, 'z');
                     int r = 0;
                     for (int i = 0; i < 100 && r >= 0; ++i) r = co_await c->send(as_bytes(chunk));
                     co_return r;
                   }(at))
              .join();
  EXPECT_TRUE(r == -EPIPE || r == -ECONNRESET) << describe(IoOp::kSend, r);
  EXPECT_EQ(server.join(), 0);
  rt.stop();
}

// A client that never reads: the server's send of a lot fills the socket buffers and waits; a
// deadline ends it -ETIMEDOUT, and another client is served meanwhile.
TEST(TcpErrors, AClientThatNeverReadsEndsASendWithADeadlineOnly) {
  Watchdog wd("a send to a client that never reads");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(loopback());
  ASSERT_TRUE(listener.ok());
  SocketAddress at = listener->local_address();
  int sleeper = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(sleeper, at.get(), at.size()), 0);  // never reads
  auto server = rt.spawn(0, [](TcpListener l, Runtime& rt) -> Task<int> {
    auto s = co_await l.accept();
    if (!s.ok()) co_return 1;
    std::vector<std::byte> lots(16 << 20);
    IoCall send = s->send(lots);
    send.msg().set_timeout(absl::Milliseconds(100));
    int r = co_await send;
    // Another connection is served while that one is stuck.
    auto other = co_await l.accept();
    if (!other.ok()) co_return 2;
    long echoed = co_await echo(std::move(*other));
    (void)rt;
    co_return r == -ETIMEDOUT&& echoed == 10 * 64 ? 0 : r;
  }(std::move(*listener), rt));
  EXPECT_EQ(rt.spawn(1, ping_client(at, 10, 64)).join(), 10);
  EXPECT_EQ(server.join(), 0);
  ::close(sleeper);
  rt.stop();
}

TEST(Tcp, AHugeSendGoesOnAfterShortSendsUntilAllIsSent) {
  Watchdog wd("a 32 MiB send read back in full");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(loopback());
  ASSERT_TRUE(listener.ok());
  SocketAddress at = listener->local_address();
  constexpr int kSize = 32 << 20;
  auto reader = rt.spawn(0, [](TcpListener l) -> Task<long> {
    auto s = co_await l.accept();
    if (!s.ok()) co_return -1;
    long total = 0;
    std::uint8_t expect = 0;
    for (;;) {
      Received r = co_await s->receive();
      if (!r) break;
      for (std::byte b : r.bytes()) {
        if (static_cast<std::uint8_t>(b) != expect++) co_return -2;
      }
      total += static_cast<long>(r.bytes().size());
    }
    co_return total;
  }(std::move(*listener)));
  int sent = rt.spawn(1,
                      [](SocketAddress to) -> Task<int> {
                        auto c = co_await TcpStream::connect(to);
                        if (!c.ok()) co_return -1;
                        std::vector<std::byte> big(kSize);
                        for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::byte(i & 0xff);
                        int r = co_await c->send(big);
                        co_await c->shutdown();
                        co_return r;
                      }(at))
                 .join();
  EXPECT_EQ(sent, kSize);
  EXPECT_EQ(reader.join(), kSize);
  rt.stop();
}

// The multishot recv runs its buffer ring dry (the reader keeps every buffer), the kernel ends it
// with ENOBUFS, and once the buffers are back it is re-armed: every byte still arrives, in order.
TEST(Tcp, AMultishotRecvThatRunsOutOfBuffersIsReArmedWhenTheyComeBack) {
  Watchdog wd("a reader that exhausts the buffer ring, then gives the buffers back");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(loopback());
  ASSERT_TRUE(listener.ok());
  SocketAddress at = listener->local_address();
  constexpr long kTotal = 16l << 20;  // 4x the ring's 1024 x 4 KiB
  auto reader = rt.spawn(0, [](TcpListener l) -> Task<long> {
    auto s = co_await l.accept();
    if (!s.ok()) co_return -1;
    BufferRing& ring = BufferRing::current();
    std::vector<Received> held;
    long total = 0;
    std::uint8_t expect = 0;
    for (;;) {
      if (ring.available() == 0) {
        co_await sleep_for(absl::Milliseconds(5));  // let the kernel find the ring empty
        held.clear();                               // every buffer back at once
      }
      Received r = co_await s->receive();
      if (!r) break;
      for (std::byte b : r.bytes()) {
        if (static_cast<std::uint8_t>(b) != expect++) co_return -2;
      }
      total += static_cast<long>(r.bytes().size());
      held.push_back(std::move(r));
    }
    co_return ring.starved() > 0 ? total : -3;
  }(std::move(*listener)));
  int sent = rt.spawn(1,
                      [](SocketAddress to) -> Task<int> {
                        auto c = co_await TcpStream::connect(to);
                        if (!c.ok()) co_return -1;
                        std::vector<std::byte> big(kTotal);
                        for (std::size_t i = 0; i < big.size(); ++i) big[i] = std::byte(i & 0xff);
                        int r = co_await c->send(big);
                        co_await c->shutdown();
                        co_return r;
                      }(at))
                 .join();
  EXPECT_EQ(sent, kTotal);
  EXPECT_EQ(reader.join(), kTotal) << "-3: the ring never ran dry; -2: bytes out of order";
  rt.stop();
}

TEST(TcpErrors, EMFILEOnAcceptIsAnErrorAndTheListenerGoesOn) {
  if (msgport::testing::kSanitized) GTEST_SKIP() << "sanitizer runtimes open descriptors";
  Watchdog wd("accept with no descriptors left, then with some");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(loopback());
  ASSERT_TRUE(listener.ok());
  SocketAddress at = listener->local_address();
  // Two clients connect (the kernel completes them into the backlog) before descriptors run out.
  int a = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int b = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(a, at.get(), at.size()), 0);
  rlimit saved{};
  getrlimit(RLIMIT_NOFILE, &saved);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(b + 1);  // no descriptor above b is free
  std::atomic<bool> limited{false}, lifted{false};
  auto server = rt.spawn(
      0,
      [](TcpListener l, std::atomic<bool>& limited,
         std::atomic<bool>& lifted) -> Task<std::string> {
        while (!limited.load()) co_await sleep_for(absl::Milliseconds(1));
        auto first = co_await l.accept();
        std::string said = first.ok() ? "accepted?" : first.status().ToString();
        while (!lifted.load()) co_await sleep_for(absl::Milliseconds(1));
        auto second = co_await l.accept();
        co_return said + (second.ok() ? " | then accepted" : " | " + second.status().ToString());
      }(std::move(*listener), limited, lifted));
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  limited.store(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_EQ(::connect(b, at.get(), at.size()), 0);
  lifted.store(true);
  std::string said = server.join();
  EXPECT_NE(said.find("EMFILE"), std::string::npos) << said;
  EXPECT_NE(said.find("then accepted"), std::string::npos) << said;
  ::close(a);
  ::close(b);
  rt.stop();
}

// Stop with an accept and a receive still waiting in the kernel: the core's drain cancels them,
// nothing re-arms, every message is replied, and the threads are cancelled cleanly.
TEST(TcpStop, StopWithAnAcceptAndAReceivePendingEndsCleanly) {
  Watchdog wd("stop(kCancel) with multishots in flight");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(loopback());
  ASSERT_TRUE(listener.ok());
  SocketAddress at = listener->local_address();
  auto acceptor = rt.spawn(0, [](TcpListener l) -> Task<int> {
    auto first = co_await l.accept();
    if (!first.ok()) co_return -1;
    auto never = co_await l.accept();  // nobody else connects: pending at stop
    co_return never.ok() ? 1 : 0;
  }(std::move(*listener)));
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(client, at.get(), at.size()), 0);
  // The idle client connects elsewhere: a plain listening socket that never accepts or sends.
  SocketAddress quiet_at;
  int quiet = plain_listener(&quiet_at);
  auto idle = rt.spawn(1, [](SocketAddress to) -> Task<int> {
    auto c = co_await TcpStream::connect(to);
    if (!c.ok()) co_return -1;
    Received r = co_await c->receive();  // nothing comes: pending at stop
    co_return r ? 1 : 0;
  }(quiet_at));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  rt.stop(StopMode::kCancel);
  EXPECT_THROW(acceptor.join(), ThreadCancelled);
  EXPECT_THROW(idle.join(), ThreadCancelled);
  ::close(client);
  ::close(quiet);
}

// A listener armed on a core and destroyed on another thread while the runtime runs: its
// multishot accept is cancelled on its core, and its state freed once the kernel lets go.
TEST(TcpStop, AListenerDestroyedOffItsCoreIsCancelledThere) {
  Watchdog wd("a listener destroyed on main");
  Runtime rt(two_cores());
  auto listener = TcpListener::bind(loopback());
  ASSERT_TRUE(listener.ok());
  SocketAddress at = listener->local_address();
  auto owned = std::make_unique<TcpListener>(std::move(*listener));
  auto acceptor = rt.spawn(0, [](TcpListener& l) -> Task<int> {
    auto s = co_await l.accept();  // arms the multishot, which stays armed after this one
    co_return s.ok() ? 1 : 0;
  }(*owned));
  int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(client, at.get(), at.size()), 0);
  EXPECT_EQ(acceptor.join(), 1);
  owned.reset();  // on main: the cancel goes to core 0
  // The core goes on serving.
  auto listener2 = TcpListener::bind(loopback());
  ASSERT_TRUE(listener2.ok());
  SocketAddress at2 = listener2->local_address();
  auto server = rt.spawn(0, echo_server(rt, std::move(*listener2), 1));
  EXPECT_EQ(rt.spawn(1, ping_client(at2, 10, 64)).join(), 10);
  EXPECT_EQ(server.join(), 640);
  ::close(client);
  rt.stop();
}

}  // namespace
}  // namespace msgport::io
