// io/device_port.cc — the device port's agent, its completions, backlog, aborts and drain.
#include <absl/strings/str_cat.h>
#include <fcntl.h>
#include <liburing.h>
#include <msgport/io/buffer_ring.h>
#include <msgport/io/device_port.h>
#include <msgport/ports/check.h>
#include <msgport/ports/ops.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <ostream>
#include <stdexcept>

namespace msgport::io {

namespace {

// The io_uring opcode each operation needs (for the probe).
int opcode_of(IoOp op) noexcept {
  switch (op) {
    case IoOp::kNop:
      return IORING_OP_NOP;
    case IoOp::kRead:
      return IORING_OP_READ;
    case IoOp::kWrite:
      return IORING_OP_WRITE;
    case IoOp::kReadv:
      return IORING_OP_READV;
    case IoOp::kWritev:
      return IORING_OP_WRITEV;
    case IoOp::kFsync:
      return IORING_OP_FSYNC;
    case IoOp::kOpen:
      return IORING_OP_OPENAT;
    case IoOp::kClose:
      return IORING_OP_CLOSE;
    case IoOp::kStatx:
      return IORING_OP_STATX;
    case IoOp::kAccept:
      return IORING_OP_ACCEPT;
    case IoOp::kConnect:
      return IORING_OP_CONNECT;
    case IoOp::kRecv:
      return IORING_OP_RECV;
    case IoOp::kSend:
      return IORING_OP_SEND;
    case IoOp::kSendZc:
      return IORING_OP_SEND_ZC;
    case IoOp::kShutdown:
      return IORING_OP_SHUTDOWN;
    case IoOp::kSocket:
      return IORING_OP_SOCKET;
    case IoOp::kAcceptMulti:
      return IORING_OP_ACCEPT;
    case IoOp::kRecvMulti:
      return IORING_OP_RECV;
  }
  return IORING_OP_NOP;
}

constexpr IoOp kAllOps[] = {IoOp::kNop,         IoOp::kRead,     IoOp::kWrite,    IoOp::kReadv,
                            IoOp::kWritev,      IoOp::kFsync,    IoOp::kOpen,     IoOp::kClose,
                            IoOp::kStatx,       IoOp::kAccept,   IoOp::kConnect,  IoOp::kRecv,
                            IoOp::kSend,        IoOp::kSendZc,   IoOp::kShutdown, IoOp::kSocket,
                            IoOp::kAcceptMulti, IoOp::kRecvMulti};

std::uint64_t bit(IoOp op) noexcept { return std::uint64_t{1} << static_cast<unsigned>(op); }

void bump(std::uint64_t& c) noexcept { ++c; }

// How long a stopping core waits for the kernel to finish cancelled operations.
constexpr auto kDrainGrace = std::chrono::seconds(5);

}  // namespace

const char* op_name(IoOp op) noexcept {
  switch (op) {
    case IoOp::kNop:
      return "nop";
    case IoOp::kRead:
      return "read";
    case IoOp::kWrite:
      return "write";
    case IoOp::kReadv:
      return "readv";
    case IoOp::kWritev:
      return "writev";
    case IoOp::kFsync:
      return "fsync";
    case IoOp::kOpen:
      return "open";
    case IoOp::kClose:
      return "close";
    case IoOp::kStatx:
      return "statx";
    case IoOp::kAccept:
      return "accept";
    case IoOp::kConnect:
      return "connect";
    case IoOp::kRecv:
      return "recv";
    case IoOp::kSend:
      return "send";
    case IoOp::kSendZc:
      return "send_zc";
    case IoOp::kShutdown:
      return "shutdown";
    case IoOp::kSocket:
      return "socket";
    case IoOp::kAcceptMulti:
      return "accept";
    case IoOp::kRecvMulti:
      return "recv";
  }
  return "?";
}

std::string describe(IoOp op, int result) {
  if (result >= 0) return absl::StrCat(op_name(op), ": ok (", result, ")");
  const char* name = strerrorname_np(-result);
  return absl::StrCat(op_name(op), ": ", strerror(-result), " (", name ? name : "?", ")");
}

std::string DevicePort::Counters::to_string() const {
  return absl::StrCat("inline=", inline_done, " async=", async, " refused=", refused,
                      " submitted=", submitted, " completed=", completed,
                      " backlogged=", backlogged, " aborted=", aborted, " cancelled=", cancelled,
                      " timed_out=", timed_out, " replied=", replied);
}

std::ostream& operator<<(std::ostream& os, const DevicePort::Counters& c) {
  return os << c.to_string();
}

DevicePort::Counters DevicePort::counters() const noexcept {
  Counters c = counters_;
  c.refused += refused_elsewhere_.load(std::memory_order_relaxed);
  return c;
}

void DevicePort::report(CoreSnapshot& s) const {
  Counters c = counters();
  s.device = "device";
  s.device_counters = {
      {"inline", c.inline_done},  {"async", c.async},         {"refused", c.refused},
      {"submitted", c.submitted}, {"completed", c.completed}, {"backlogged", c.backlogged},
      {"aborted", c.aborted},     {"cancelled", c.cancelled}, {"timed_out", c.timed_out},
      {"replied", c.replied},
  };
  s.features.insert(s.features.end(), probed_.begin(), probed_.end());
}

// ---- one per core ------------------------------------------------------------------------------

DevicePort& DevicePort::create_current() {
  Core& core = detail::current_core_or_throw("io::device_port()");
  auto port = std::unique_ptr<DevicePort>(new DevicePort(core));
  current_ = port.get();
  core.attach_device(std::move(port));
  return *current_;
}

BufferRing& DevicePort::buffer_ring() {
  if (ring_ == nullptr) {
    ring_ =
        std::make_unique<BufferRing>(core_, 0, BufferRing::kDefaultCount, BufferRing::kDefaultSize);
  }
  return *ring_;
}

DevicePort::DevicePort(Core& core) : core_(core) {
  bool send_zc = false, socket = false, accept = false, recv = false, link_timeout = false,
       async_cancel = false;
  if (io_uring_probe* probe = io_uring_get_probe_ring(core_.ring())) {
    for (IoOp op : kAllOps) {
      if (!io_uring_opcode_supported(probe, opcode_of(op))) unsupported_ |= bit(op);
    }
    auto has = [probe](int opcode) { return io_uring_opcode_supported(probe, opcode) != 0; };
    send_zc = has(IORING_OP_SEND_ZC);
    socket = has(IORING_OP_SOCKET);
    accept = has(IORING_OP_ACCEPT);
    recv = has(IORING_OP_RECV);
    link_timeout = has(IORING_OP_LINK_TIMEOUT);
    async_cancel = has(IORING_OP_ASYNC_CANCEL);
    io_uring_free_probe(probe);
  }
  // Multishot and buffer rings have no opcode of their own: inferred from the kernel release
  // (see device_port.h).
  probed_ = {
      {"send_zc", send_zc},
      {"socket", socket},
      {"accept_multishot", accept && socket},
      {"recv_multishot", recv && send_zc},
      {"buf_ring", socket},
      {"link_timeout", link_timeout},
      {"async_cancel", async_cancel},
  };
  for (const auto& f : probed_) {
    if (f.on) absl::StrAppend(&features_, features_.empty() ? "" : " ", f.name);
  }
}

DevicePort::~DevicePort() = default;

bool DevicePort::supports(IoOp op) const noexcept { return !(unsupported_ & bit(op)); }

// ---- the agent ---------------------------------------------------------------------------------

int DevicePort::begin_msg(Message& msg) {
  auto& m = static_cast<IoMsg&>(msg);
  if (Core::current() != &core_) {  // a device port works on its own core only
    refused_elsewhere_.fetch_add(1, std::memory_order_relaxed);
    return -EXDEV;
  }
  if (draining_ || !supports(m.op)) {
    bump(counters_.refused);
    return draining_ ? -ECANCELED : -EOPNOTSUPP;  // stopping: nothing new goes in
  }
  m.port_ = this;
  m.done_bytes_ = 0;
  m.timed_out_ = false;
  m.cancel_sent_ = false;
  int result;
  if (inline_ && try_inline(m, result)) {
    bump(counters_.inline_done);
    return result;
  }
  // The sender is on this core, and the completion replies here: held locally, the sender
  // parks and the reply completes with plain stores (ports/ops.h).
  detail::hold_locally(m, detail::MsgAccess::state(m).load(std::memory_order_relaxed), &core_);
  // Behind what already waits for room, in order.
  bump(counters_.async);
  if (!backlog_.empty() || !submit(m)) {
    backlog_.push(m);
    needs_flush = true;
    bump(counters_.backlogged);
  }
  return kAsync;
}

// Nonblocking attempts for the operations that can complete without waiting. true: done, with
// `result`; false: go through the ring (it would block, or the operation has no such path).
bool DevicePort::try_inline(IoMsg& m, int& result) noexcept {
  ssize_t n;
  switch (m.op) {
    case IoOp::kRecv:
      // A deadline is the ring's (a linked timeout); so is a read that would wait.
      if (m.timeout_ != absl::ZeroDuration()) return false;
      n = ::recv(m.fd, m.buf, m.len, m.flags | MSG_DONTWAIT);
      break;
    case IoOp::kSend: {
      n = ::send(m.fd, m.buf, m.len, m.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n >= 0 && static_cast<std::uint32_t>(n) < m.len) {
        m.done_bytes_ = static_cast<std::uint32_t>(n);  // the rest goes through the ring
        return false;
      }
      break;
    }
    case IoOp::kRead: {
      if (m.timeout_ != absl::ZeroDuration() || m.offset == static_cast<std::uint64_t>(-1)) {
        return false;
      }
      iovec iov{m.buf, m.len};
      n = ::preadv2(m.fd, &iov, 1, static_cast<off_t>(m.offset), RWF_NOWAIT);
      break;
    }
    default:
      return false;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EOPNOTSUPP) return false;
    result = -errno;
    return true;
  }
  result = static_cast<int>(n);
  return true;
}

// Prepares m's submission (and its linked timeout) on the core's ring.
bool DevicePort::submit(IoMsg& m) noexcept {
  io_uring* ring = core_.ring();
  const bool linked = m.timeout_ != absl::ZeroDuration();
  const unsigned need = linked ? 2 : 1;
  if (io_uring_sq_space_left(ring) < need) {
    io_uring_submit(ring);  // make room: what is prepared goes to the kernel now
    if (io_uring_sq_space_left(ring) < need) return false;
  }
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  char* bytes = static_cast<char*>(m.buf);
  switch (m.op) {
    case IoOp::kNop:
      io_uring_prep_nop(sqe);
      break;
    case IoOp::kRead:
      io_uring_prep_read(sqe, m.fd, m.buf, m.len, m.offset);
      break;
    case IoOp::kWrite:
      io_uring_prep_write(sqe, m.fd, m.buf, m.len, m.offset);
      break;
    case IoOp::kReadv:
      io_uring_prep_readv(sqe, m.fd, static_cast<const iovec*>(m.buf), m.len, m.offset);
      break;
    case IoOp::kWritev:
      io_uring_prep_writev(sqe, m.fd, static_cast<const iovec*>(m.buf), m.len, m.offset);
      break;
    case IoOp::kFsync:
      io_uring_prep_fsync(sqe, m.fd, static_cast<unsigned>(m.flags));
      break;
    case IoOp::kOpen:
      io_uring_prep_openat(sqe, m.fd, m.path, m.flags, m.mode);
      break;
    case IoOp::kClose:
      io_uring_prep_close(sqe, m.fd);
      break;
    case IoOp::kStatx:
      io_uring_prep_statx(sqe, m.fd, m.path, m.flags, m.mode, m.statx_buf);
      break;
    case IoOp::kAccept:
      io_uring_prep_accept(sqe, m.fd, m.addr, m.addrlen, m.flags);
      break;
    case IoOp::kConnect:
      io_uring_prep_connect(sqe, m.fd, m.addr, m.addr_size);
      break;
    case IoOp::kRecv:
      io_uring_prep_recv(sqe, m.fd, m.buf, m.len, m.flags);
      break;
    case IoOp::kSend:
      io_uring_prep_send(sqe, m.fd, bytes + m.done_bytes_, m.len - m.done_bytes_,
                         m.flags | MSG_NOSIGNAL);
      break;
    case IoOp::kSendZc:
      io_uring_prep_send_zc(sqe, m.fd, bytes + m.done_bytes_, m.len - m.done_bytes_,
                            m.flags | MSG_NOSIGNAL, 0);
      break;
    case IoOp::kShutdown:
      io_uring_prep_shutdown(sqe, m.fd, m.flags);
      break;
    case IoOp::kSocket:
      io_uring_prep_socket(sqe, m.fd, m.flags, static_cast<int>(m.mode), 0);
      break;
    case IoOp::kAcceptMulti:
      io_uring_prep_multishot_accept(sqe, m.fd, m.addr, m.addrlen, m.flags);
      break;
    case IoOp::kRecvMulti:
      io_uring_prep_recv_multishot(sqe, m.fd, nullptr, 0, m.flags);
      sqe->flags |= IOSQE_BUFFER_SELECT;
      sqe->buf_group = m.buf_group;
      break;
  }
  io_uring_sqe_set_data(sqe, static_cast<Core::CqeHandler*>(&m.op_cqe_));
  m.cqes_left_ = 1;
  if (linked) {
    sqe->flags |= IOSQE_IO_LINK;
    absl::Duration d = m.timeout_;
    m.ts_.tv_sec = absl::ToInt64Seconds(d);
    m.ts_.tv_nsec = absl::ToInt64Nanoseconds(d - absl::Seconds(m.ts_.tv_sec));
    io_uring_sqe* t = io_uring_get_sqe(ring);
    io_uring_prep_link_timeout(t, &m.ts_, 0);
    io_uring_sqe_set_data(t, static_cast<Core::CqeHandler*>(&m.timeout_cqe_));
    m.cqes_left_ = 2;
  }
  core_.io_started();
  bump(counters_.submitted);
  return true;
}

// ---- completions -------------------------------------------------------------------------------

void IoMsg::Cqe::on_cqe(const io_uring_cqe& cqe) noexcept {
  IoMsg& m = *self;
  if (this == &m.timeout_cqe_) {
    if (cqe.res == -ETIME) m.timed_out_ = true;
  } else if (cqe.flags & IORING_CQE_F_NOTIF) {
    // send_zc's notification: the kernel is done with the buffer.
  } else if (m.on_more != nullptr) {
    m.on_more(m, cqe);  // a multishot's completion: its data goes to its owner
    if (cqe.flags & IORING_CQE_F_MORE) return;
    m.res_ = cqe.res;  // the last one
  } else {
    m.res_ = cqe.res;
    if (cqe.flags & IORING_CQE_F_MORE) ++m.cqes_left_;  // send_zc: a notification follows
  }
  if (--m.cqes_left_ == 0) m.port_->completed(m);
}

// Every CQE of m is in: the kernel is done with m and its buffers.
void DevicePort::completed(IoMsg& m) noexcept {
  core_.io_finished();
  int r = m.res_;
  if ((m.op == IoOp::kSend || m.op == IoOp::kSendZc) && r > 0) {
    m.done_bytes_ += static_cast<std::uint32_t>(r);
    r = static_cast<int>(m.done_bytes_);
    // A short send goes on, unless it was aborted or timed out, or the core is stopping.
    if (m.done_bytes_ < m.len && !m.timed_out_ && !m.abort_requested() && !draining_) {
      if (!backlog_.empty() || !submit(m)) {
        backlog_.push(m);
        needs_flush = true;
        bump(counters_.backlogged);
      }
      return;
    }
    if (m.done_bytes_ < m.len) r = m.timed_out_ ? -ETIMEDOUT : -ECANCELED;
  } else if (m.timed_out_ && (r == -ECANCELED || r == -EINTR)) {
    r = -ETIMEDOUT;
  }
  if (r == -ETIMEDOUT) bump(counters_.timed_out);
  bump(counters_.completed);
  bump(counters_.replied);
  reply_msg(m, r);
}

// ---- abort, backlog, drain ---------------------------------------------------------------------

bool DevicePort::remove_queued(Message& msg, bool reply) noexcept {
  if (reply || Core::current() != &core_) return false;
  return backlog_.remove(msg);
}

namespace {
// An abort from another thread (a stream or listener destroyed off its core): the cancel is
// submitted on the port's core. It names the operation by its user_data value only, never reading
// the message, which may be replied and gone by the time the cancel runs.
struct RemoteCancel : CoreCall {
  std::uint64_t user_data = 0;
};
}  // namespace

void DevicePort::abort(Message& msg) noexcept {
  auto& m = static_cast<IoMsg&>(msg);
  if (Core::current() != &core_) {
    auto* call = new (std::nothrow) RemoteCancel;
    if (call == nullptr) return;  // the operation finishes on its own; its reply still comes
    call->user_data = reinterpret_cast<std::uint64_t>(static_cast<Core::CqeHandler*>(&m.op_cqe_));
    call->fn = [](CoreCall* c) noexcept {
      auto* self = static_cast<RemoteCancel*>(c);
      if (Core* here = Core::current(); here != nullptr && current_ != nullptr) {
        bump(current_->counters_.aborted);  // on the port's core
        io_uring* ring = here->ring();
        io_uring_sqe* sqe = io_uring_get_sqe(ring);
        if (sqe == nullptr) {
          io_uring_submit(ring);
          sqe = io_uring_get_sqe(ring);
        }
        if (sqe != nullptr) {
          io_uring_prep_cancel64(sqe, self->user_data, 0);
          io_uring_sqe_set_data64(sqe, 0);
          sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        }
      }
      delete self;
    };
    core_.deliver(CoreEntry(call, CoreEntry::kCall));
    return;
  }
  if (backlog_.remove(m)) {
    bump(counters_.aborted);
    bump(counters_.replied);
    reply_msg(m, -ECANCELED);  // never reached the kernel
    return;
  }
  if (m.cancel_sent_ || m.done()) return;
  io_uring* ring = core_.ring();
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (sqe == nullptr) {
    io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
    if (sqe == nullptr) return;  // the kernel refuses everything now; the send goes on
  }
  io_uring_prep_cancel(sqe, static_cast<Core::CqeHandler*>(&m.op_cqe_), 0);
  io_uring_sqe_set_data64(sqe, 0);  // the cancel's own completion is not a message's
  sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
  m.cancel_sent_ = true;
  bump(counters_.aborted);
  bump(counters_.cancelled);
}

void DevicePort::flush() noexcept {
  // In order: the oldest first, and none behind one that still finds no room.
  while (Message* head = backlog_.front()) {
    if (!submit(static_cast<IoMsg&>(*head))) return;
    backlog_.remove(*head);
  }
  needs_flush = false;
}

void DevicePort::drain() noexcept {
  draining_ = true;
  while (Message* m = backlog_.pop()) {
    bump(counters_.replied);
    reply_msg(*m, -ECANCELED);
  }
  io_uring* ring = core_.ring();
  if (core_.io_in_flight() == 0) {
    if (ring_ != nullptr) ring_->unregister();
    return;
  }
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (sqe == nullptr) {
    io_uring_submit(ring);
    sqe = io_uring_get_sqe(ring);
  }
  if (sqe != nullptr) {
    io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(sqe, 0);
  }
  auto until = std::chrono::steady_clock::now() + kDrainGrace;
  while (core_.io_in_flight() != 0 && std::chrono::steady_clock::now() < until) {
    __kernel_timespec ts{0, 10'000'000};
    io_uring_cqe* cqe = nullptr;
    io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, nullptr);
    core_.reap();
  }
  // The ring goes next: the kernel lets go of the buffer ring now. Its memory stays until the
  // port goes, so that streams destroyed later may still hand buffers back (to nobody).
  if (ring_ != nullptr) ring_->unregister();
  if (core_.io_in_flight() != 0) {
    std::fprintf(stderr,
                 "msgport: core %d stopped with %llu device operation(s) the kernel did not "
                 "finish after a cancel; their messages are not replied\n",
                 core_.id(), static_cast<unsigned long long>(core_.io_in_flight()));
  }
}

}  // namespace msgport::io
