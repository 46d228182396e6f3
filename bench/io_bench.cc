// bench/io_bench.cc — what the io layer (device ports on each core's io_uring) costs, against the
// same operation written without the runtime.
//
//   BM_RawUringNop          a nop on a private io_uring set up like a core's: prep,
//                           io_uring_submit, io_uring_wait_cqe, cqe_seen (no runtime)
//   BM_NopPort              the same as a device-port message: co_await do_msg(device_port(), m)
//                           with IoOp::kNop (always through the ring), on a 1-core runtime
//   BM_Pread4K              pread(2) of 4 KiB at offset 0 from a file in the page cache
//   BM_FileRead4K           the same through io::File::read on a 1-core runtime, inline path on
//                           (preadv2 RWF_NOWAIT first)
//   BM_FileRead4KRing       the same with the inline path off: every read through the ring
//   BM_TcpPingPong          64 bytes there and back over loopback TCP: the client (core 0) sends
//                           and recv()s into its buffer, the server (core 1) echoes with
//                           receive() (multishot) + send
//   BM_TcpPingPongBlocking  the same between two pinned std::threads doing blocking send/recv
//                           (TCP_NODELAY on both ends)
//   BM_TcpSend/<bytes>      bulk sends over loopback from core 0 to a recv() loop on core 1
//   BM_TcpSendZc/<bytes>    the same with send_zc (zero-copy; replied after the notification)
//
// The file and TCP benchmarks report, as counters, how many operations per iteration the device
// ports did inline and how many went through the ring. After the run a table gives the ratios the
// io layer's goals are stated in.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <liburing.h>
#include <msgport/io/io.h>
#include <msgport/ports/ops.h>
#include <msgport/runtime/runtime.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace msgport {
namespace {

using io::device_port;
using io::DevicePort;
using io::File;
using io::IoMsg;
using io::IoOp;
using io::Received;
using io::SocketAddress;
using io::TcpListener;
using io::TcpStream;

RuntimeOptions cores(int n) {
  RuntimeOptions o;
  o.cores = n;
  // Under valgrind (tools/instructions.sh sets MSGPORT_BENCH_NO_SLEEP) a core must not sleep in
  // io_uring_enter: valgrind runs one thread at a time and would not let the waker run.
  if (std::getenv("MSGPORT_BENCH_NO_SLEEP") != nullptr) o.poll_before_sleep = absl::Seconds(100);
  return o;
}

// The device port's work per benchmark iteration, as counters.
void report_port(benchmark::State& state, const DevicePort::Counters& before,
                 const DevicePort::Counters& after) {
  if (state.iterations() == 0) return;
  auto per_iteration = [&](std::uint64_t n) {
    return benchmark::Counter(static_cast<double>(n) / static_cast<double>(state.iterations()));
  };
  state.counters["inline"] = per_iteration(after.inline_done - before.inline_done);
  state.counters["ring"] = per_iteration(after.submitted - before.submitted);
}

// Pins the calling thread to the i-th CPU the process may use: where a runtime pins its core i
// (RuntimeOptions::pin). The plain baselines run there too, so that both sides of a ratio share
// a CPU (and its neighbours' noise).
void pin(int i) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &allowed) && i-- == 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      pthread_setaffinity_np(pthread_self(), sizeof set, &set);
      return;
    }
  }
}

// Restores the calling thread's CPU affinity when it goes out of scope.
struct KeepAffinity {
  cpu_set_t saved;
  KeepAffinity() { pthread_getaffinity_np(pthread_self(), sizeof saved, &saved); }
  ~KeepAffinity() { pthread_setaffinity_np(pthread_self(), sizeof saved, &saved); }
};

// ---- nop -------------------------------------------------------------------------------------

// The ring is set up as a core sets up its own (runtime/core.cc): the same flags, tried in the same
// order, so that the ratio to BM_NopPort is the runtime's cost, not the setup's (a ring with no
// flags measured 30-50 ns slower per nop here, on kernel 6.18).
void BM_RawUringNop(benchmark::State& state) {
  struct Try {
    unsigned flags;
    const char* name;
  };
  const Try tries[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER+DEFER_TASKRUN"},
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, "SINGLE_ISSUER+COOP_TASKRUN"},
      {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
      {0, "plain"},
  };
  io_uring ring;
  int rc = -1;
  for (const Try& t : tries) {
    io_uring_params p{};
    p.flags = t.flags | IORING_SETUP_CQSIZE;
    p.cq_entries = 8192;                              // Core::kCqEntries
    rc = io_uring_queue_init_params(256, &ring, &p);  // Core::kSqEntries
    if (rc == 0) {
      state.SetLabel(t.name);
      break;
    }
  }
  if (rc != 0) {
    state.SkipWithError(("io_uring_queue_init: " + std::string(strerror(-rc))).c_str());
    return;
  }
  KeepAffinity keep;
  pin(0);  // where BM_NopPort's core runs
  for (auto _ : state) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_nop(sqe);
    io_uring_submit(&ring);
    io_uring_cqe* cqe = nullptr;
    io_uring_wait_cqe(&ring, &cqe);
    benchmark::DoNotOptimize(cqe->res);
    io_uring_cqe_seen(&ring, cqe);
  }
  io_uring_queue_exit(&ring);
}
BENCHMARK(BM_RawUringNop)->UseRealTime();

Task<void> nop_loop(benchmark::State& state) {
  DevicePort& port = device_port();
  DevicePort::Counters before = port.counters();
  IoMsg m;
  m.op = IoOp::kNop;
  for (auto _ : state) benchmark::DoNotOptimize(co_await do_msg(port, m));
  report_port(state, before, port.counters());
}

void BM_NopPort(benchmark::State& state) {
  Runtime rt(cores(1));
  rt.block_on(nop_loop(state));
  rt.stop();
}
BENCHMARK(BM_NopPort)->UseRealTime();

// ---- 4 KiB from the page cache ---------------------------------------------------------------

constexpr std::size_t kReadSize = 4096;

// A 4 KiB temp file (unlinked at once), written and read once so that it is in the page cache.
int cached_file() {
  static int fd = [] {
    char path[] = "/tmp/msgport-io-bench-XXXXXX";
    int f = mkstemp(path);
    if (f < 0) std::abort();
    unlink(path);
    std::vector<char> bytes(kReadSize, 'x');
    if (pwrite(f, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) {
      std::abort();
    }
    if (pread(f, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size())) {
      std::abort();
    }
    return f;
  }();
  return fd;
}

// The buffer every read goes into: the same page-aligned bytes for both sides of the ratio (the
// copy's speed depends on the destination's alignment).
std::span<std::byte> read_buffer() {
  alignas(4096) static std::array<std::byte, kReadSize> buf;
  return buf;
}

void BM_Pread4K(benchmark::State& state) {
  int fd = cached_file();
  std::span<std::byte> buf = read_buffer();
  KeepAffinity keep;
  pin(0);  // where BM_FileRead4K's core runs
  for (auto _ : state) {
    ssize_t n = pread(fd, buf.data(), buf.size(), 0);
    if (n != static_cast<ssize_t>(kReadSize)) {
      state.SkipWithError("pread: short read");
      break;
    }
    benchmark::DoNotOptimize(buf.data());
  }
}
BENCHMARK(BM_Pread4K)->UseRealTime();

Task<void> file_read_loop(benchmark::State& state, int fd, bool inline_path) {
  DevicePort& port = device_port();
  port.set_inline(inline_path);
  DevicePort::Counters before = port.counters();
  File f(fd);
  std::span<std::byte> buf = read_buffer();
  for (auto _ : state) {
    int n = co_await f.read(buf, 0);
    if (n != static_cast<int>(kReadSize)) {
      state.SkipWithError(io::describe(IoOp::kRead, n).c_str());
      break;
    }
    benchmark::DoNotOptimize(buf.data());
  }
  f.release();  // the file stays open for the next benchmark
  report_port(state, before, port.counters());
  port.set_inline(true);
}

void file_reads(benchmark::State& state, bool inline_path) {
  Runtime rt(cores(1));
  rt.block_on(file_read_loop(state, cached_file(), inline_path));
  rt.stop();
}

void BM_FileRead4K(benchmark::State& state) { file_reads(state, true); }
BENCHMARK(BM_FileRead4K)->UseRealTime();

void BM_FileRead4KRing(benchmark::State& state) { file_reads(state, false); }
BENCHMARK(BM_FileRead4KRing)->UseRealTime();

// ---- TCP ping-pong ---------------------------------------------------------------------------

constexpr std::size_t kPingSize = 64;

SocketAddress loopback() { return *SocketAddress::parse("127.0.0.1", 0); }

// The server: one connection, echoed with the multishot receive until the client finishes.
Task<void> tcp_echo(TcpListener listener) {
  absl::StatusOr<TcpStream> s = co_await listener.accept();
  if (!s.ok()) co_return;
  for (;;) {
    Received r = co_await s->receive();
    if (!r) break;
    if (co_await s->send(r.bytes()) < 0) break;
  }
  co_await s->close();
}

Task<void> tcp_client(benchmark::State& state, SocketAddress to) {
  absl::StatusOr<TcpStream> c = co_await TcpStream::connect(to);
  if (!c.ok()) {
    state.SkipWithError(c.status().ToString().c_str());
    co_return;
  }
  DevicePort& port = device_port();
  DevicePort::Counters before = port.counters();
  std::array<std::byte, kPingSize> out{}, in{};
  for (auto _ : state) {
    if (int n = co_await c->send(out); n != static_cast<int>(kPingSize)) {
      state.SkipWithError(io::describe(IoOp::kSend, n).c_str());
      break;
    }
    std::size_t got = 0;
    while (got < kPingSize) {
      int n = co_await c->recv(std::span(in).subspan(got));
      if (n <= 0) {
        state.SkipWithError(io::describe(IoOp::kRecv, n == 0 ? -ECONNRESET : n).c_str());
        break;
      }
      got += static_cast<std::size_t>(n);
    }
    if (got < kPingSize) break;
  }
  report_port(state, before, port.counters());
  co_await c->shutdown();
  co_await c->close();
}

void BM_TcpPingPong(benchmark::State& state) {
  Runtime rt(cores(2));
  absl::StatusOr<TcpListener> listener = TcpListener::bind(loopback());
  if (!listener.ok()) {
    state.SkipWithError(listener.status().ToString().c_str());
    return;
  }
  SocketAddress at = listener->local_address();
  auto server = rt.spawn(1, tcp_echo(std::move(*listener)));
  rt.block_on(tcp_client(state, at));
  rt.stop(StopMode::kCancel);  // the server ends at the client's shutdown (or is cancelled)
}
BENCHMARK(BM_TcpPingPong)->UseRealTime();

bool send_all(int fd, const std::byte* p, std::size_t len) {
  while (len > 0) {
    ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
    if (n <= 0) return false;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

bool recv_all(int fd, std::byte* p, std::size_t len) {
  while (len > 0) {
    ssize_t n = ::recv(fd, p, len, 0);
    if (n <= 0) return false;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

// A connected loopback TCP pair (client, server), TCP_NODELAY on both; false if it failed.
bool tcp_pair(int& client, int& server) {
  int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SocketAddress any = loopback();
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (l < 0 || ::bind(l, any.get(), any.size()) != 0 || ::listen(l, 1) != 0 ||
      getsockname(l, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    if (l >= 0) ::close(l);
    return false;
  }
  client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool ok = client >= 0 && ::connect(client, reinterpret_cast<sockaddr*>(&ss), len) == 0;
  server = ok ? ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC) : -1;
  ::close(l);
  if (server < 0) {
    if (client >= 0) ::close(client);
    return false;
  }
  int one = 1;
  setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return true;
}

void BM_TcpPingPongBlocking(benchmark::State& state) {
  int client, server;
  if (!tcp_pair(client, server)) {
    state.SkipWithError(("loopback TCP pair: " + std::string(strerror(errno))).c_str());
    return;
  }
  KeepAffinity keep;  // later benchmarks run unpinned
  // The runtime's cores' CPUs: the server on the second, the client on the first.
  std::thread echo([server] {
    pin(1);
    std::array<std::byte, kPingSize> buf{};
    for (;;) {
      ssize_t n = ::recv(server, buf.data(), buf.size(), 0);
      if (n <= 0 || !send_all(server, buf.data(), static_cast<std::size_t>(n))) break;
    }
  });
  pin(0);
  std::array<std::byte, kPingSize> out{}, in{};
  for (auto _ : state) {
    if (!send_all(client, out.data(), out.size()) || !recv_all(client, in.data(), in.size())) {
      state.SkipWithError(("send/recv: " + std::string(strerror(errno))).c_str());
      break;
    }
  }
  ::shutdown(client, SHUT_WR);
  echo.join();
  ::close(client);
  ::close(server);
}
BENCHMARK(BM_TcpPingPongBlocking)->UseRealTime();

// ---- bulk sends: copy or zero-copy -----------------------------------------------------------

// The client (core 0) sends state.range(0) bytes per iteration with send() (copying) or send_zc()
// (the kernel sends from the buffer itself and replies after its notification that it is done
// with it); the server (core 1) reads everything into one large buffer with recv().
Task<void> bulk_sink(TcpListener listener) {
  absl::StatusOr<TcpStream> s = co_await listener.accept();
  if (!s.ok()) co_return;
  std::vector<std::byte> in(1 << 20);
  while (co_await s->recv(in) > 0) {
  }
  co_await s->close();
}

Task<void> bulk_source(benchmark::State& state, SocketAddress to, bool zero_copy) {
  absl::StatusOr<TcpStream> c = co_await TcpStream::connect(to);
  if (!c.ok()) {
    state.SkipWithError(c.status().ToString().c_str());
    co_return;
  }
  std::vector<std::byte> out(static_cast<std::size_t>(state.range(0)), std::byte{'x'});
  for (auto _ : state) {
    int n = zero_copy ? co_await c->send_zc(out) : co_await c->send(out);
    if (n != static_cast<int>(out.size())) {
      state.SkipWithError(io::describe(zero_copy ? IoOp::kSendZc : IoOp::kSend, n).c_str());
      break;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * state.range(0));
  co_await c->shutdown();
  co_await c->close();
}

void tcp_bulk(benchmark::State& state, bool zero_copy) {
  Runtime rt(cores(2));
  absl::StatusOr<TcpListener> listener = TcpListener::bind(loopback());
  if (!listener.ok()) {
    state.SkipWithError(listener.status().ToString().c_str());
    return;
  }
  SocketAddress at = listener->local_address();
  auto server = rt.spawn(1, bulk_sink(std::move(*listener)));
  rt.block_on(bulk_source(state, at, zero_copy));
  rt.stop(StopMode::kCancel);
}

void BM_TcpSend(benchmark::State& state) { tcp_bulk(state, false); }
BENCHMARK(BM_TcpSend)->UseRealTime()->RangeMultiplier(4)->Range(16 << 10, 1 << 20);

void BM_TcpSendZc(benchmark::State& state) { tcp_bulk(state, true); }
BENCHMARK(BM_TcpSendZc)->UseRealTime()->RangeMultiplier(4)->Range(16 << 10, 1 << 20);

// ---- the summary table -----------------------------------------------------------------------

class TableReporter final : public benchmark::ConsoleReporter {
 public:
  // Colors only on a terminal (--benchmark_color applies to the library's own reporter only).
  TableReporter() : ConsoleReporter(isatty(STDOUT_FILENO) ? OO_ColorTabular : OO_Tabular) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred) continue;
      if (r.run_type == Run::RT_Aggregate && r.aggregate_name != "median") continue;
      ns_[r.run_name.function_name] = r.GetAdjustedRealTime();  // default unit: ns
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    auto get = [&](const std::string& n) { return ns_.count(n) ? ns_[n] : 0.0; };
    std::printf("\nmsgport io (%s): goals (one run, real time)\n\n", io::backend_name());
    auto row = [&](const char* a, const char* b, const char* goal_text, double goal) {
      double x = get(a), y = get(b);
      if (!(x > 0) || !(y > 0)) return;  // not run (--benchmark_filter)
      std::string what = std::string(a + 3) + " / " + (b + 3);
      std::printf("  %-38s %8.2f x", what.c_str(), x / y);
      if (goal > 0) {
        std::printf("   goal <= %-4s %s", goal_text, x / y <= goal ? "met" : "MISSED");
      }
      std::printf("\n");
    };
    row("BM_NopPort", "BM_RawUringNop", "1.1", 1.1);
    row("BM_FileRead4K", "BM_Pread4K", "1.2", 1.2);
    row("BM_TcpPingPong", "BM_TcpPingPongBlocking", "1.0", 1.0);
    row("BM_FileRead4KRing", "BM_Pread4K", "", 0);
    row("BM_FileRead4KRing", "BM_FileRead4K", "", 0);
    std::printf("\n");
  }

 private:
  std::map<std::string, double> ns_;
};

}  // namespace
}  // namespace msgport

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  msgport::TableReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
