// msgport/io/io_msg.h — the message a device port turns into an io_uring submission.
//
// An IoMsg names one operation (op) and its operands. Send it to the calling core's device port
// (io/device_port.h) like any other message: `co_await do_msg(io::device_port(), m)`, or use the
// typed wrappers (io/file.h, io/tcp.h), which build the message in the awaiting coroutine's frame.
// The reply's result is the operation's: >= 0 (bytes, a file descriptor, 0) or -errno.
// io::describe(m.op, result) turns it into a readable error naming the operation.
//
// Buffers: the buffer (and path, address, iovec, statx) the message names belong to the kernel
// from the send until the reply, exactly like the message itself. The reply comes only after the
// kernel is done with every one of them — also for a cancelled or timed-out operation, whose
// reply waits for the operation's own completion.
//
// A deadline (set_timeout) makes the operation end with -ETIMEDOUT if it has not completed in
// time (an io_uring linked timeout). abort_msg(m) cancels it (an io_uring async cancel): the
// reply is -ECANCELED, or the operation's own result if it finished first.
//
// Nothing here allocates. IoMsg is not copyable or movable: it lives where it was built.
#pragma once

#include <absl/time/time.h>
#include <linux/time_types.h>
#include <msgport/ports/message.h>
#include <msgport/runtime/chrono.h>
#include <msgport/runtime/core.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

struct statx;
struct iovec;

namespace msgport::io {

class DevicePort;

enum class IoOp : std::uint8_t {
  kNop,
  kRead,      // fd, buf, len, offset (-1: the file position)
  kWrite,     // fd, buf, len, offset
  kReadv,     // fd, iov, len = iovec count, offset
  kWritev,    // fd, iov, len = iovec count, offset
  kFsync,     // fd; flags: 0 (fsync) or IORING_FSYNC_DATASYNC (fdatasync)
  kOpen,      // dirfd in fd (AT_FDCWD), path, flags (O_*), mode
  kClose,     // fd
  kStatx,     // dirfd in fd, path, flags (AT_*), mode = mask, statx_buf
  kAccept,    // fd (listener), addr/addrlen (may be null), flags (SOCK_*)
  kConnect,   // fd, addr, addrlen
  kRecv,      // fd, buf, len, flags (MSG_*)
  kSend,      // fd, buf, len, flags (MSG_*); sends the whole buffer, going on after short sends
  kSendZc,    // as kSend, zero-copy: replied after the kernel's notification
  kShutdown,  // fd, flags = how (SHUT_*)
  kSocket,    // domain in fd, type in flags, protocol in mode
  // Multishot: one message, many completions, each passed to on_more; the message is replied
  // once, after the last (the kernel is done with it then).
  kAcceptMulti,  // fd (listener), flags (SOCK_*): each completion a new connection (or -errno)
  kRecvMulti,    // fd, flags (MSG_*), buf_group: each completion a buffer of the group, 0 or -errno
};

// The operation's name, for errors ("read", "accept", ...).
const char* op_name(IoOp op) noexcept;

// A readable error for a result: "recv: Connection reset by peer (ECONNRESET)"; for a result >= 0,
// "recv: ok (N)".
std::string describe(IoOp op, int result);

class IoMsg : public Message {
 public:
  // Device messages are abortable from the start (abort_msg sends an async cancel).
  IoMsg() noexcept {
    op_cqe_.self = this;
    timeout_cqe_.self = this;
    set_abortable(true);
  }

  IoOp op = IoOp::kNop;
  int fd = -1;
  void* buf = nullptr;  // kRead/kWrite/kRecv/kSend: bytes; kReadv/kWritev: const iovec*
  std::uint32_t len = 0;
  std::uint64_t offset = static_cast<std::uint64_t>(-1);
  int flags = 0;
  std::uint32_t mode = 0;
  const char* path = nullptr;
  sockaddr* addr = nullptr;
  socklen_t* addrlen = nullptr;  // kAccept: in/out
  socklen_t addr_size = 0;       // kConnect
  struct statx* statx_buf = nullptr;

  std::uint16_t buf_group = 0;  // kRecvMulti: the provided-buffer group (io/buffer_ring.h)
  // Multishot: called on the core for every completion (the last one too, before the reply).
  void (*on_more)(IoMsg& m, const io_uring_cqe& cqe) noexcept = nullptr;
  void* owner = nullptr;  // for on_more: whatever the multishot serves

  // A deadline for the operation, counted from its submission. Zero: none. Also takes any
  // std::chrono::duration (converted by runtime/chrono.h).
  void set_timeout(absl::Duration d) noexcept { timeout_ = d; }
  template <class Rep, class Period>
  void set_timeout(std::chrono::duration<Rep, Period> d) noexcept {
    set_timeout(to_absl(d));
  }
  absl::Duration timeout() const noexcept { return timeout_; }

  // kSend / kSendZc: bytes sent so far (the reply's result is the total).
  std::uint32_t sent() const noexcept { return done_bytes_; }

 private:
  friend class DevicePort;

  // One completion record per CQE this message may get: the operation's and its linked
  // timeout's. user_data points at them; they find the message through `self`.
  struct Cqe final : Core::CqeHandler {
    void on_cqe(const io_uring_cqe& cqe) noexcept override;
    IoMsg* self = nullptr;
  };

  absl::Duration timeout_ = absl::ZeroDuration();
  __kernel_timespec ts_{};  // the linked timeout's, read by the kernel at submission
  Cqe op_cqe_;
  Cqe timeout_cqe_;
  DevicePort* port_ = nullptr;    // the device port it was submitted through
  std::uint32_t done_bytes_ = 0;  // kSend/kSendZc progress
  int res_ = 0;                   // the operation's result, kept until every CQE is in
  std::uint8_t cqes_left_ = 0;    // CQEs still to come before the reply
  bool timed_out_ = false;        // the linked timeout fired
  bool cancel_sent_ = false;      // abort: an async cancel is on its way
};

}  // namespace msgport::io
