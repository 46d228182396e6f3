// bench/epoll_echo.cc — a plain single-threaded epoll echo server, the baseline for
// bench/echo_compare.sh.
//
// Nonblocking sockets, level-triggered: a readable connection gets one read() into a shared
// buffer and the bytes are written straight back; what the socket will not take yet is kept for
// that connection, which then waits for EPOLLOUT (and is not read) until it is all out.
//
//   build/bench/epoll_echo --port=7778
#include <absl/flags/flag.h>
#include <absl/flags/parse.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

ABSL_FLAG(int, port, 7778, "TCP port to listen on");
ABSL_FLAG(std::string, address, "127.0.0.1", "numeric IPv4 address to listen on");

namespace {

// What a connection could not write yet (empty almost always).
struct Pending {
  std::vector<char> bytes;
  std::size_t off = 0;
};

int fail(const char* what) {
  std::fprintf(stderr, "epoll_echo: %s: %s\n", what, std::strerror(errno));
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(absl::GetFlag(FLAGS_port)));
  if (inet_pton(AF_INET, absl::GetFlag(FLAGS_address).c_str(), &sa.sin_addr) != 1) {
    std::fprintf(stderr, "epoll_echo: --address must be a numeric IPv4 address\n");
    return 2;
  }
  int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (lfd < 0) return fail("socket");
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return fail("bind");
  if (::listen(lfd, 4096) != 0) return fail("listen");

  // SIGINT / SIGTERM through a signalfd in the same epoll set: a clean exit 0.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, nullptr);
  int sfd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
  if (sfd < 0) return fail("signalfd");

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return fail("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.fd = sfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev);
  std::printf("epoll_echo: listening on %s:%d\n", absl::GetFlag(FLAGS_address).c_str(),
              absl::GetFlag(FLAGS_port));
  std::fflush(stdout);

  std::unordered_map<int, Pending> pending;
  std::vector<char> buf(64 * 1024);
  std::vector<epoll_event> events(1024);
  auto drop = [&](int fd) {
    pending.erase(fd);
    ::close(fd);  // also leaves the epoll set
  };
  for (;;) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      const std::uint32_t what = events[static_cast<std::size_t>(i)].events;
      if (fd == sfd) {
        std::printf("epoll_echo: stopping\n");
        return 0;
      }
      if (fd == lfd) {
        for (;;) {
          int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
              std::fprintf(stderr, "epoll_echo: accept4: %s\n", std::strerror(errno));
            }
            break;
          }
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      if (what & EPOLLOUT) {  // finish what is pending, then read again
        Pending& p = pending[fd];
        ssize_t w = ::send(fd, p.bytes.data() + p.off, p.bytes.size() - p.off, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN) {
          drop(fd);
          continue;
        }
        if (w > 0) p.off += static_cast<std::size_t>(w);
        if (p.off == p.bytes.size()) {
          pending.erase(fd);
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = fd;
          epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
        }
        continue;
      }
      ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) {  // end of stream or an error
        drop(fd);
        continue;
      }
      ssize_t w = ::send(fd, buf.data(), static_cast<std::size_t>(r), MSG_NOSIGNAL);
      if (w < 0 && errno != EAGAIN) {
        drop(fd);
        continue;
      }
      if (w < r) {  // the rest waits for room
        Pending& p = pending[fd];
        const std::size_t sent = w > 0 ? static_cast<std::size_t>(w) : 0;
        p.bytes.assign(buf.data() + sent, buf.data() + r);
        p.off = 0;
        epoll_event cev{};
        cev.events = EPOLLOUT;
        cev.data.fd = fd;
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &cev);
      }
    }
  }
}
