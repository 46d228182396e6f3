// bench/echo_load.cc — a load client for TCP echo servers.
//
// Ping-pong mode (the default): --connections connections, each sending a --size byte message
// and waiting for its echo before it sends the next, for --duration after a --warmup. It reports
// round trips per second, the round trip's latency (p50, p99, max), and, given --server_pid, the
// server's CPU time (utime + stime from /proc/<pid>/stat) over the measured window, per message.
// The connections are spread over --threads client threads, each with an epoll set of its own
// (level-triggered, nonblocking sockets).
//
// Idle mode (--idle=N): opens N connections that send nothing, and reports the server's resident
// memory (VmRSS) before and after, per connection. Raise RLIMIT_NOFILE first (ulimit -n).
//
// The last line is machine-readable, for bench/echo_compare.sh:
//   RESULT msgs_per_s=... cpu_us_per_msg=... p50_us=... p99_us=... errors=...
//   RESULT idle_connections=... rss_before_kib=... rss_after_kib=... bytes_per_connection=...
//
//   build/bench/echo_load --port=7777 --connections=50 --duration=5s --server_pid=$(pidof ...)
#include <absl/flags/flag.h>
#include <absl/flags/parse.h>
#include <absl/time/clock.h>
#include <absl/time/time.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

ABSL_FLAG(std::string, address, "127.0.0.1", "server address (numeric IPv4)");
ABSL_FLAG(int, port, 7777, "server port");
ABSL_FLAG(int, connections, 50, "connections doing ping-pong");
ABSL_FLAG(int, size, 64, "bytes per message");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "measured time");
ABSL_FLAG(absl::Duration, warmup, absl::Milliseconds(500), "load before the measured time");
ABSL_FLAG(int, threads, 1, "client threads (connections are spread over them)");
ABSL_FLAG(int, server_pid, 0, "the server's pid: its CPU time and memory are read from /proc");
ABSL_FLAG(int, idle, 0, "idle mode: open this many idle connections and report server memory");
ABSL_FLAG(absl::Duration, settle, absl::Seconds(1), "idle mode: wait this long before measuring");

namespace {

using Clock = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "echo_load: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

// The server's utime + stime, in seconds; -1 if it cannot be read.
double server_cpu_seconds(int pid) {
  if (pid <= 0) return -1;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return -1;
  // The command name (field 2) is in parentheses and may hold spaces: parse after the last ')'.
  std::size_t close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The server's VmRSS in KiB; -1 if it cannot be read.
long server_rss_kib(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

sockaddr_in server_address() {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(absl::GetFlag(FLAGS_port)));
  if (inet_pton(AF_INET, absl::GetFlag(FLAGS_address).c_str(), &sa.sin_addr) != 1) {
    std::fprintf(stderr, "echo_load: --address must be a numeric IPv4 address\n");
    std::exit(2);
  }
  return sa;
}

// A blocking connect, then nonblocking with TCP_NODELAY (as the servers set it).
int connect_to(const sockaddr_in& sa) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) die("connect");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  return fd;
}

struct Conn {
  int fd = -1;
  std::uint32_t got = 0;     // bytes of the echo received so far
  std::int64_t sent_at = 0;  // when the message went out
  std::uint8_t seq = 0;      // first byte of the message: echoes are checked
  std::vector<char> out, in;
};

// What one client thread measured.
struct Stats {
  std::uint64_t messages = 0;        // round trips completed in the measured window
  std::vector<std::uint32_t> rtt;    // their latencies, ns (saturating)
  std::uint64_t errors = 0;          // wrong echoes, closed connections, failed calls
  std::uint64_t total_messages = 0;  // warm-up included
};

// Phases, shared by the threads: 0 warm-up, 1 measuring, 2 draining (send no more).
std::atomic<int> phase{0};

bool send_message(Conn& c, std::size_t size) {
  c.out[0] = static_cast<char>(++c.seq);
  c.got = 0;
  c.sent_at = now_ns();
  std::size_t off = 0;
  while (off < size) {
    ssize_t n = ::send(c.fd, c.out.data() + off, size - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
    } else if (n < 0 && errno == EAGAIN) {
      std::this_thread::yield();  // 64 bytes on an idle socket: never in practice
    } else {
      return false;
    }
  }
  return true;
}

void run_client(std::vector<Conn>& conns, std::size_t size, Stats& stats) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  for (std::size_t i = 0; i < conns.size(); ++i) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev) != 0) die("epoll_ctl");
  }
  std::size_t live = 0;
  for (Conn& c : conns) {
    if (send_message(c, size)) {
      ++live;
    } else {
      ++stats.errors;
    }
  }
  std::vector<epoll_event> events(conns.size());
  while (live > 0) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    const int ph = phase.load(std::memory_order_relaxed);
    for (int e = 0; e < n; ++e) {
      Conn& c = conns[events[static_cast<std::size_t>(e)].data.u64];
      ssize_t r = ::recv(c.fd, c.in.data() + c.got, size - c.got, 0);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) {  // closed or failed
        ++stats.errors;
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        --live;
        continue;
      }
      c.got += static_cast<std::uint32_t>(r);
      if (c.got < size) continue;
      const std::int64_t rtt = now_ns() - c.sent_at;
      if (std::memcmp(c.in.data(), c.out.data(), size) != 0) ++stats.errors;
      ++stats.total_messages;
      if (ph == 1) {
        ++stats.messages;
        stats.rtt.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(rtt, UINT32_MAX)));
      }
      if (ph == 2) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        --live;
        continue;
      }
      if (!send_message(c, size)) {
        ++stats.errors;
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        --live;
      }
    }
  }
  ::close(ep);
}

int ping_pong(int pid) {
  const int nconns = absl::GetFlag(FLAGS_connections);
  const auto size = static_cast<std::size_t>(absl::GetFlag(FLAGS_size));
  const int nthreads = std::max(1, std::min(absl::GetFlag(FLAGS_threads), nconns));
  if (nconns <= 0 || size == 0) {
    std::fprintf(stderr, "echo_load: --connections and --size must be positive\n");
    return 2;
  }
  const sockaddr_in sa = server_address();
  std::vector<std::vector<Conn>> groups(static_cast<std::size_t>(nthreads));
  for (int i = 0; i < nconns; ++i) {
    Conn c;
    c.fd = connect_to(sa);
    c.out.assign(size, 'p');
    c.in.assign(size, '\0');
    groups[static_cast<std::size_t>(i % nthreads)].push_back(std::move(c));
  }
  std::vector<Stats> stats(static_cast<std::size_t>(nthreads));
  for (Stats& s : stats) {
    s.rtt.reserve(static_cast<std::size_t>(
        2e6 * absl::ToDoubleSeconds(absl::GetFlag(FLAGS_duration)) / nthreads));
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < nthreads; ++t) {
    threads.emplace_back(run_client, std::ref(groups[static_cast<std::size_t>(t)]), size,
                         std::ref(stats[static_cast<std::size_t>(t)]));
  }

  absl::SleepFor(absl::GetFlag(FLAGS_warmup));
  const double cpu0 = server_cpu_seconds(pid);
  const std::int64_t t0 = now_ns();
  phase.store(1, std::memory_order_relaxed);
  absl::SleepFor(absl::GetFlag(FLAGS_duration));
  phase.store(2, std::memory_order_relaxed);
  const std::int64_t t1 = now_ns();
  const double cpu1 = server_cpu_seconds(pid);
  for (std::thread& t : threads) t.join();
  for (auto& g : groups) {
    for (Conn& c : g) ::close(c.fd);
  }

  std::uint64_t messages = 0, errors = 0;
  std::vector<std::uint32_t> rtt;
  for (Stats& s : stats) {
    messages += s.messages;
    errors += s.errors;
    rtt.insert(rtt.end(), s.rtt.begin(), s.rtt.end());
  }
  const double secs = static_cast<double>(t1 - t0) / 1e9;
  const double rate = static_cast<double>(messages) / secs;
  auto pct = [&](double p) -> double {
    if (rtt.empty()) return 0;
    auto k = static_cast<std::size_t>(p * static_cast<double>(rtt.size() - 1));
    std::nth_element(rtt.begin(), rtt.begin() + static_cast<std::ptrdiff_t>(k), rtt.end());
    return rtt[k] / 1e3;
  };
  const double p50 = pct(0.50), p99 = pct(0.99), pmax = pct(1.0);
  double cpu_us = -1;
  if (cpu0 >= 0 && cpu1 >= 0 && messages > 0) {
    cpu_us = (cpu1 - cpu0) * 1e6 / static_cast<double>(messages);
  }
  std::printf(
      "echo_load: %d connections x %zu B, %.2f s: %llu round trips, %.0f msgs/s, rtt p50 %.1f us, "
      "p99 %.1f us, max %.1f us, %llu errors\n",
      nconns, size, secs, static_cast<unsigned long long>(messages), rate, p50, p99, pmax,
      static_cast<unsigned long long>(errors));
  if (pid > 0) {
    std::printf("echo_load: server %d CPU %.3f s over the window (%.0f%% of a CPU), %.2f us/msg\n",
                pid, cpu1 - cpu0, 100 * (cpu1 - cpu0) / secs, cpu_us);
  }
  std::printf("RESULT msgs_per_s=%.0f cpu_us_per_msg=%.3f p50_us=%.1f p99_us=%.1f errors=%llu\n",
              rate, cpu_us, p50, p99, static_cast<unsigned long long>(errors));
  return errors == 0 && messages > 0 ? 0 : 1;
}

int idle_connections(int pid, int n) {
  if (pid <= 0) {
    std::fprintf(stderr, "echo_load: --idle needs --server_pid\n");
    return 2;
  }
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur < static_cast<rlim_t>(n) + 64) {
    lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, static_cast<rlim_t>(n) + 64);
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  const sockaddr_in sa = server_address();
  // One connection made and echoed first, so that what is allocated once (buffers, rings) is in
  // the "before" figure.
  int probe = connect_to(sa);
  Conn pc;
  pc.fd = probe;
  pc.out.assign(8, 'w');
  pc.in.assign(8, '\0');
  send_message(pc, 8);
  for (std::size_t got = 0; got < 8;) {
    ssize_t r = ::recv(probe, pc.in.data() + got, 8 - got, 0);
    if (r > 0) got += static_cast<std::size_t>(r);
    if (r == 0 || (r < 0 && errno != EAGAIN)) die("probe echo");
    if (r < 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  absl::SleepFor(absl::GetFlag(FLAGS_settle));
  const long before = server_rss_kib(pid);
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) fds.push_back(connect_to(sa));
  absl::SleepFor(absl::GetFlag(FLAGS_settle));
  // Every connection still works: the server accepted and serves each (one byte each way).
  int bad = 0;
  for (int fd : fds) {
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  }
  const long after = server_rss_kib(pid);
  for (int fd : fds) {
    char b = 'i';
    if (::send(fd, &b, 1, MSG_NOSIGNAL) != 1) ++bad;
  }
  for (int fd : fds) {
    char b = 0;
    if (::recv(fd, &b, 1, 0) != 1 || b != 'i') ++bad;
  }
  for (int fd : fds) ::close(fd);
  ::close(probe);
  const double per = (after - before) * 1024.0 / n;
  std::printf(
      "echo_load: %d idle connections: server VmRSS %ld KiB -> %ld KiB, %.0f B each, "
      "%d not echoed afterwards\n",
      n, before, after, per, bad);
  std::printf(
      "RESULT idle_connections=%d rss_before_kib=%ld rss_after_kib=%ld "
      "bytes_per_connection=%.0f errors=%d\n",
      n, before, after, per, bad);
  return bad == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int pid = absl::GetFlag(FLAGS_server_pid);
  if (absl::GetFlag(FLAGS_idle) > 0) return idle_connections(pid, absl::GetFlag(FLAGS_idle));
  return ping_pong(pid);
}
