// io/tcp.cc — TCP streams and listeners: plain device messages, and one multishot (recv or
// accept) per object whose completions are queued for its one reader.
#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <arpa/inet.h>
#include <msgport/io/device_port.h>
#include <msgport/io/tcp.h>
#include <msgport/ports/ops.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

namespace msgport::io {

// ---- SocketAddress -----------------------------------------------------------------------------

absl::StatusOr<SocketAddress> SocketAddress::parse(std::string_view host, std::uint16_t port) {
  SocketAddress a;
  std::string h(host);
  if (!h.empty() && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage_);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  if (inet_pton(AF_INET, h.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.size_ = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.size_ = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("msgport: not a numeric IPv4 or IPv6 address: '", h, "'"));
  }
  return a;
}

SocketAddress SocketAddress::of(const sockaddr* sa, socklen_t len) noexcept {
  SocketAddress a;
  std::memcpy(&a.storage_, sa, std::min<std::size_t>(len, sizeof a.storage_));
  a.size_ = len;
  return a;
}

std::uint16_t SocketAddress::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  }
  return 0;
}

std::string SocketAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
    return absl::StrCat(buf, ":", port());
  }
  if (family() == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
              sizeof buf);
    return absl::StrCat("[", buf, "]:", port());
  }
  return "(no address)";
}

namespace {

// A status for a failed system call, naming what failed and the errno: "bind 127.0.0.1:80
// (EADDRINUSE): Address already in use".
absl::Status errno_status(int e, const std::string& what) {
  const char* name = strerrorname_np(e);
  return absl::ErrnoToStatus(e, absl::StrCat(what, " (", name ? name : "?", ")"));
}

void no_delay(int fd) noexcept {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // small messages go out at once
}

}  // namespace

// ---- Received ----------------------------------------------------------------------------------

Received::Received(Received&& other) noexcept
    : ring_(std::exchange(other.ring_, nullptr)),
      bid_(other.bid_),
      bytes_(std::exchange(other.bytes_, {})),
      error_(other.error_) {}

Received& Received::operator=(Received&& other) noexcept {
  if (this != &other) {
    release();
    ring_ = std::exchange(other.ring_, nullptr);
    bid_ = other.bid_;
    bytes_ = std::exchange(other.bytes_, {});
    error_ = other.error_;
  }
  return *this;
}

Received::~Received() { release(); }

void Received::release() noexcept {
  if (ring_ != nullptr) std::exchange(ring_, nullptr)->recycle(bid_);
  bytes_ = {};
}

// ---- TcpStream ---------------------------------------------------------------------------------

// The stream's multishot recv and what it received; the reply port of that multishot, so that a
// stream destroyed while the kernel still holds it is freed once the kernel lets go.
struct TcpStream::State final : Port, BufferRing::Waiter {
  explicit State(int fd_in) : fd(fd_in) { rearm = &State::on_buffers; }

  int begin_msg(Message&) override { return -EOPNOTSUPP; }

  // The multishot ended (its last completion is in): the kernel is done with it.
  void put_reply(Message& m) noexcept override {
    detail::complete(m);
    in_flight = false;
    if (orphaned) {
      delete this;
      return;
    }
    if (m.result() == -ECANCELED) {
      // Cancelled (closed, or its core is stopping): it ends here, never re-armed.
      if (end > 0) end = -ECANCELED;
      if (reader != nullptr) std::exchange(reader, nullptr)->wake(Wake::kDirect);
    } else if (starved && end > 0) {
      ring->wait_for_buffers(*this);  // re-armed as soon as a buffer is back
    } else if (reader != nullptr && head == chunks.size() && end > 0) {
      arm();  // it ended with data (the kernel may do so); the reader still waits
    }
  }

  static void on_buffers(BufferRing::Waiter* w) noexcept {
    auto* self = static_cast<State*>(w);
    self->starved = false;
    if (self->reader != nullptr) self->arm();  // else the next receive() arms it
  }

  void arm() noexcept {
    if (in_flight || end <= 0 || fd < 0) return;
    if (ring == nullptr) ring = &BufferRing::current();
    recv.op = IoOp::kRecvMulti;
    recv.fd = fd;
    recv.buf_group = ring->group();
    recv.on_more = &State::on_more;
    recv.owner = this;
    recv.set_reply_port(this);
    in_flight = true;
    send_msg(device_port(), recv);  // a refusal replies at once: put_reply
    if (!in_flight && recv.result() < 0 && end > 0) end = recv.result();
  }

  static void on_more(IoMsg& m, const io_uring_cqe& cqe) noexcept {
    State& st = *static_cast<State*>(m.owner);
    bool woke = false;
    if (cqe.res > 0 && (cqe.flags & IORING_CQE_F_BUFFER)) {
      auto bid = static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
      st.chunks.push_back({bid, st.ring->take(bid, static_cast<std::uint32_t>(cqe.res))});
      woke = true;
    } else if (!(cqe.flags & IORING_CQE_F_MORE)) {
      if (cqe.res == -ENOBUFS) {
        st.starved = true;  // not the reader's business: it waits until buffers are back
      } else if (cqe.res <= 0 && st.end > 0) {
        st.end = cqe.res;  // 0: the peer finished; < 0: an error
        woke = true;
      }
    }
    if (woke && st.reader != nullptr) std::exchange(st.reader, nullptr)->wake(Wake::kDirect);
  }

  void give_back() noexcept {
    for (std::size_t i = head; i < chunks.size(); ++i) ring->recycle(chunks[i].bid);
    chunks.clear();
    head = 0;
    if (ring != nullptr) ring->forget(*this);
  }

  struct Chunk {
    std::uint16_t bid;
    std::span<std::byte> bytes;
  };

  int fd = -1;
  IoMsg recv;
  bool in_flight = false;  // the multishot is in the kernel (sent, not replied)
  bool orphaned = false;   // its TcpStream is gone: free on the reply
  bool starved = false;    // ended for want of buffers
  int end = 1;             // > 0 open; 0 end of stream; < 0 an error
  BufferRing* ring = nullptr;
  std::vector<Chunk> chunks;  // received, not yet read (from head)
  std::size_t head = 0;
  CoWaiter* reader = nullptr;
};

TcpStream::TcpStream(int fd) : st_(std::make_unique<State>(fd)) {}
TcpStream::TcpStream(TcpStream&&) noexcept = default;

TcpStream& TcpStream::operator=(TcpStream&& other) noexcept {
  if (this != &other) {
    TcpStream gone(std::move(*this));
    st_ = std::move(other.st_);
  }
  return *this;
}

TcpStream::~TcpStream() {
  if (st_ == nullptr) return;
  State* st = st_.release();
  if (st->ring != nullptr) st->give_back();
  if (st->fd >= 0) ::close(st->fd);
  st->fd = -1;
  if (st->in_flight) {
    st->orphaned = true;  // freed by its reply, once the kernel has let go of the multishot
    abort_msg(st->recv);
  } else {
    delete st;
  }
}

int TcpStream::fd() const noexcept { return st_ ? st_->fd : -1; }

Task<absl::StatusOr<TcpStream>> TcpStream::connect(SocketAddress to) {
  int fd = ::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    co_return errno_status(errno, absl::StrCat("socket for ", to.to_string()));
  }
  no_delay(fd);
  int r = co_await IoCall([&](IoMsg& m) {
    m.op = IoOp::kConnect;
    m.fd = fd;
    m.addr = const_cast<sockaddr*>(to.get());
    m.addr_size = to.size();
  });
  if (r < 0) {
    ::close(fd);
    co_return absl::ErrnoToStatus(-r,
                                  absl::StrCat(describe(IoOp::kConnect, r), ": ", to.to_string()));
  }
  co_return TcpStream(fd);
}

IoCall TcpStream::send(std::span<const std::byte> bytes) const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kSend;
    m.fd = fd();
    m.buf = const_cast<std::byte*>(bytes.data());  // the kernel only reads it
    m.len = static_cast<std::uint32_t>(bytes.size());
  });
}

IoCall TcpStream::send_zc(std::span<const std::byte> bytes) const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kSendZc;
    m.fd = fd();
    m.buf = const_cast<std::byte*>(bytes.data());
    m.len = static_cast<std::uint32_t>(bytes.size());
  });
}

IoCall TcpStream::recv(std::span<std::byte> into) const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kRecv;
    m.fd = fd();
    m.buf = into.data();
    m.len = static_cast<std::uint32_t>(into.size());
  });
}

IoCall TcpStream::shutdown(int how) const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kShutdown;
    m.fd = fd();
    m.flags = how;
  });
}

IoCall TcpStream::close() {
  int fd = -1;
  if (st_ != nullptr) {
    fd = std::exchange(st_->fd, -1);
    if (st_->in_flight) abort_msg(st_->recv);
  }
  return IoCall([fd](IoMsg& m) {
    m.op = IoOp::kClose;
    m.fd = fd;
  });
}

TcpStream::Receive TcpStream::receive() {
  if (st_ == nullptr) throw std::logic_error("msgport: receive() on an empty TcpStream");
  return Receive(*st_);
}

bool TcpStream::Receive::await_ready() {
  if (st_.head < st_.chunks.size() || st_.end <= 0) return true;
  if (st_.reader != nullptr) {
    throw std::logic_error("msgport: a TcpStream has one reader at a time");
  }
  if (!st_.in_flight && !st_.starved) st_.arm();
  return st_.head < st_.chunks.size() || st_.end <= 0;
}

void TcpStream::Receive::await_suspend(std::coroutine_handle<> h) noexcept {
  waiter_.arm(h);
  st_.reader = &waiter_;
}

Received TcpStream::Receive::await_resume() noexcept {
  st_.reader = nullptr;
  if (st_.head < st_.chunks.size()) {
    State::Chunk c = st_.chunks[st_.head++];
    if (st_.head == st_.chunks.size()) {
      st_.chunks.clear();  // keeps its capacity: no allocation in the steady state
      st_.head = 0;
    }
    return Received(st_.ring, c.bid, c.bytes);
  }
  return st_.end == 0 ? Received() : Received(st_.end);
}

// ---- TcpListener -------------------------------------------------------------------------------

struct TcpListener::State final : Port {
  explicit State(int fd_in) : fd(fd_in) {}

  int begin_msg(Message&) override { return -EOPNOTSUPP; }

  void put_reply(Message& m) noexcept override {
    detail::complete(m);
    in_flight = false;
    if (orphaned) {
      for (std::size_t i = head; i < results.size(); ++i) {
        if (results[i] >= 0) ::close(results[i]);
      }
      delete this;
      return;
    }
    if (m.result() == -ECANCELED) {
      // Cancelled (closed, or its core is stopping): the reader learns it, nothing re-arms.
      results.push_back(-ECANCELED);
      if (reader != nullptr) std::exchange(reader, nullptr)->wake(Wake::kDirect);
    } else if (reader != nullptr && head == results.size()) {
      arm();
    }
  }

  void arm() noexcept {
    if (in_flight || fd < 0) return;
    accept.op = IoOp::kAcceptMulti;
    accept.fd = fd;
    accept.flags = SOCK_CLOEXEC;
    accept.on_more = &State::on_more;
    accept.owner = this;
    accept.set_reply_port(this);
    in_flight = true;
    send_msg(device_port(), accept);
    if (!in_flight && accept.result() < 0) results.push_back(accept.result());
  }

  static void on_more(IoMsg& m, const io_uring_cqe& cqe) noexcept {
    State& st = *static_cast<State*>(m.owner);
    if (cqe.res == -ECANCELED && !(cqe.flags & IORING_CQE_F_MORE)) return;  // closing
    st.results.push_back(cqe.res);  // a connection, or an error for the reader
    if (st.reader != nullptr) std::exchange(st.reader, nullptr)->wake(Wake::kDirect);
  }

  int fd = -1;
  IoMsg accept;
  bool in_flight = false;
  bool orphaned = false;
  std::vector<int> results;  // accepted descriptors (or -errno), not yet taken (from head)
  std::size_t head = 0;
  CoWaiter* reader = nullptr;
};

TcpListener::TcpListener(TcpListener&&) noexcept = default;

TcpListener& TcpListener::operator=(TcpListener&& other) noexcept {
  if (this != &other) {
    TcpListener gone(std::move(*this));
    st_ = std::move(other.st_);
  }
  return *this;
}

TcpListener::~TcpListener() {
  if (st_ == nullptr) return;
  State* st = st_.release();
  if (st->fd >= 0) ::close(st->fd);
  st->fd = -1;
  if (st->in_flight) {
    st->orphaned = true;
    abort_msg(st->accept);
  } else {
    for (std::size_t i = st->head; i < st->results.size(); ++i) {
      if (st->results[i] >= 0) ::close(st->results[i]);
    }
    delete st;
  }
}

absl::StatusOr<TcpListener> TcpListener::bind(const SocketAddress& at, int backlog) {
  int fd = ::socket(at.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_status(errno, absl::StrCat("socket for ", at.to_string()));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, at.get(), at.size()) != 0) {
    int e = errno;
    ::close(fd);
    return errno_status(e, absl::StrCat("bind ", at.to_string()));
  }
  if (::listen(fd, backlog) != 0) {
    int e = errno;
    ::close(fd);
    return errno_status(e, absl::StrCat("listen on ", at.to_string()));
  }
  TcpListener l;
  l.st_ = std::make_unique<State>(fd);
  return l;
}

int TcpListener::fd() const noexcept { return st_ ? st_->fd : -1; }

SocketAddress TcpListener::local_address() const {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  getsockname(fd(), reinterpret_cast<sockaddr*>(&ss), &len);
  return SocketAddress::of(reinterpret_cast<sockaddr*>(&ss), len);
}

TcpListener::Accept TcpListener::accept() {
  if (st_ == nullptr) throw std::logic_error("msgport: accept() on an empty TcpListener");
  return Accept(*st_);
}

bool TcpListener::Accept::await_ready() {
  if (st_.head < st_.results.size()) return true;
  if (st_.reader != nullptr) {
    throw std::logic_error("msgport: a TcpListener has one accepting reader at a time");
  }
  st_.arm();
  return st_.head < st_.results.size();
}

void TcpListener::Accept::await_suspend(std::coroutine_handle<> h) noexcept {
  waiter_.arm(h);
  st_.reader = &waiter_;
}

absl::StatusOr<TcpStream> TcpListener::Accept::await_resume() {
  st_.reader = nullptr;
  int r = st_.results[st_.head++];
  if (st_.head == st_.results.size()) {
    st_.results.clear();
    st_.head = 0;
  }
  if (r < 0) return absl::ErrnoToStatus(-r, describe(IoOp::kAccept, r));
  no_delay(r);
  return TcpStream(r);
}

}  // namespace msgport::io
