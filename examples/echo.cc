// examples/echo.cc — a TCP echo server on device ports, one listener per core.
//
// Each core runs a lightweight thread that binds a listener of its own to the same address
// (SO_REUSEPORT: the kernel spreads new connections over them) and accepts; each connection is
// served by a lightweight thread of its own on the same core, which echoes what it receives until
// the peer finishes. SIGINT or SIGTERM stops it: each core shuts its listener and its connections
// down and waits for their threads to end, then the runtime stops (StopMode::kCancel); exit 0.
//
//   build/examples/echo_server --port=7777 --cores=2 --address=127.0.0.1
//
// --port=0 binds an ephemeral port on the first core and the same port on the others; the line
// "listening on <address:port>" says which.
#include <absl/flags/flag.h>
#include <absl/flags/parse.h>
#include <absl/status/statusor.h>
#include <absl/time/time.h>
#include <msgport/io/io.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/timer.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

ABSL_FLAG(int, port, 7777, "TCP port to listen on (0: an ephemeral port)");
ABSL_FLAG(int, cores, 0, "cores to run (0: every CPU this process may use)");
ABSL_FLAG(std::string, address, "127.0.0.1", "numeric IPv4 or IPv6 address to listen on");
ABSL_FLAG(absl::Duration, poll_before_sleep, msgport::RuntimeOptions{}.poll_before_sleep,
          "how long an idle core polls before it sleeps (RuntimeOptions::poll_before_sleep)");
ABSL_FLAG(bool, inline_io, true,
          "try sends (and other quick operations) inline before the ring (DevicePort::set_inline)");

using namespace msgport;
using namespace msgport::io;

namespace {

// What a core serves: its listener and its live connections. Touched on that core only (and by
// main once the cores have stopped).
struct alignas(64) CoreServer {
  struct Conn {
    int fd = -1;
    Conn* prev = nullptr;
    Conn* next = nullptr;
  };
  // A connection's entry in its core's list, for as long as its thread runs.
  class Tracked {
   public:
    Tracked(CoreServer& cs, int fd) : cs_(cs) {
      conn_.fd = fd;
      conn_.next = cs.conns;
      if (cs.conns != nullptr) cs.conns->prev = &conn_;
      cs.conns = &conn_;
    }
    ~Tracked() {
      if (conn_.prev != nullptr) conn_.prev->next = conn_.next;
      if (conn_.next != nullptr) conn_.next->prev = conn_.prev;
      if (cs_.conns == &conn_) cs_.conns = conn_.next;
    }
    Tracked(const Tracked&) = delete;
    Tracked& operator=(const Tracked&) = delete;

   private:
    CoreServer& cs_;
    Conn conn_;
  };

  int listener_fd = -1;
  bool stopping = false;
  Conn* conns = nullptr;
};

// Echoes what the peer sends until it finishes (or the connection fails). The stream's destructor
// closes the socket: an awaited close() would keep a second device message in every idle
// connection's frame.
Task<void> echo(CoreServer& cs, TcpStream s) {
  CoreServer::Tracked tracked(cs, s.fd());
  for (;;) {
    Received r = co_await s.receive();
    if (!r) break;  // end of stream or an error
    if (co_await s.send(r.bytes()) < 0) break;
  }
}

// Binds this core's listener (reporting the outcome through `bound`), then accepts until the
// server stops, each connection in a thread of its own on this core.
Task<void> accept_loop(Runtime& rt, CoreServer& cs, SocketAddress at,
                       std::promise<absl::StatusOr<SocketAddress>>& bound) {
  absl::StatusOr<TcpListener> listener = TcpListener::bind(at);
  if (!listener.ok()) {
    bound.set_value(listener.status());
    co_return;
  }
  cs.listener_fd = listener->fd();
  device_port().set_inline(absl::GetFlag(FLAGS_inline_io));
  bound.set_value(listener->local_address());
  const int core = this_core().id();
  for (;;) {
    absl::StatusOr<TcpStream> s = co_await listener->accept();
    if (cs.stopping) break;  // the listener was shut down (EINVAL)
    if (!s.ok()) {
      // Out of descriptors, say: the listener goes on; give closing connections a moment.
      std::fprintf(stderr, "echo_server: core %d: %s\n", core, s.status().ToString().c_str());
      co_await sleep_for(absl::Milliseconds(10));
      continue;
    }
    rt.spawn(core, echo(cs, std::move(*s))).detach();
  }
  cs.listener_fd = -1;
}

// Stops serving on this core: shuts the listener down (its accept ends, and so does its thread)
// and every connection (their receives see the end of the stream, their sends fail), then waits
// up to `grace` for the connections' threads to end.
Task<bool> shut_down(CoreServer& cs, absl::Duration grace) {
  cs.stopping = true;
  if (cs.listener_fd >= 0) ::shutdown(cs.listener_fd, SHUT_RDWR);
  for (CoreServer::Conn* c = cs.conns; c != nullptr; c = c->next) ::shutdown(c->fd, SHUT_RDWR);
  absl::Time until = absl::Now() + grace;
  while ((cs.conns != nullptr || cs.listener_fd >= 0) && absl::Now() < until) {
    co_await sleep_for(absl::Milliseconds(1));
  }
  co_return cs.conns == nullptr&& cs.listener_fd < 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int port = absl::GetFlag(FLAGS_port);
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "echo_server: --port=%d is not a TCP port\n", port);
    return 2;
  }
  absl::StatusOr<SocketAddress> at =
      SocketAddress::parse(absl::GetFlag(FLAGS_address), static_cast<std::uint16_t>(port));
  if (!at.ok()) {
    std::fprintf(stderr, "echo_server: %s\n", at.status().ToString().c_str());
    return 2;
  }

  // SIGINT and SIGTERM are taken by sigwait below: block them before any core thread starts, so
  // that every thread inherits the mask and none of them is interrupted.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  RuntimeOptions options;
  options.cores = absl::GetFlag(FLAGS_cores);
  options.poll_before_sleep = absl::GetFlag(FLAGS_poll_before_sleep);
  // Declared before the runtime: threads the runtime destroys at stop still name their core's.
  std::unique_ptr<CoreServer[]> servers;
  Runtime rt(options);
  servers = std::make_unique<CoreServer[]>(static_cast<std::size_t>(rt.size()));

  // Core 0 binds first: with --port=0 the others then bind the port it was given.
  std::vector<std::promise<absl::StatusOr<SocketAddress>>> bound(
      static_cast<std::size_t>(rt.size()));
  std::vector<JoinHandle<void>> acceptors;
  // Every core ends its own listener and connections first, so that no thread is left parked on
  // a multishot accept or recv when the runtime stops. (With one left there, stop(kCancel) is not
  // clean today: the device port's drain replies the cancelled accept, TcpListener's put_reply
  // re-arms it because its reader still waits, the core stops with it in flight, and the
  // listener's destructor later aborts it on a port that is gone: SIGSEGV.)
  auto stop_all = [&] {
    std::vector<JoinHandle<bool>> closers;
    for (int c = 0; c < rt.size(); ++c) {
      closers.push_back(rt.spawn(c, shut_down(servers[c], absl::Seconds(5))));
    }
    bool clean = true;
    for (auto& c : closers) clean = c.join() && clean;
    if (!clean) std::fprintf(stderr, "echo_server: some connections did not end within 5 s\n");
    rt.stop(StopMode::kCancel);
    for (auto& a : acceptors) {
      try {
        a.join();
      } catch (const ThreadCancelled&) {
        // still parked in accept() at stop
      }
    }
  };
  SocketAddress listening = *at;
  for (int c = 0; c < rt.size(); ++c) {
    auto& promise = bound[static_cast<std::size_t>(c)];
    acceptors.push_back(rt.spawn(c, accept_loop(rt, servers[c], listening, promise)));
    absl::StatusOr<SocketAddress> got = promise.get_future().get();
    if (!got.ok()) {
      std::fprintf(stderr, "echo_server: core %d: %s\n", c, got.status().ToString().c_str());
      stop_all();
      return 1;
    }
    listening = *got;
  }
  std::printf("echo_server: listening on %s, %d cores (%s)\n", listening.to_string().c_str(),
              rt.size(), backend_name());
  std::fflush(stdout);

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0) {
  }
  std::printf("echo_server: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);

  stop_all();
  return 0;
}
