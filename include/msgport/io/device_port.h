// msgport/io/device_port.h — the device port: an agent that turns messages into io_uring
// submissions on its core's ring, and completions into replies.
//
// Each core has one (device_port(), created on first use on that core). Its agent (begin_msg)
// takes an IoMsg (io/io_msg.h) and either
//   * completes it inline, when it can without waiting (the seeds' fast path, Exec's quick I/O):
//     a recv with data already there, a send with room in the socket buffer, a read served from
//     the page cache (MSG_DONTWAIT, RWF_NOWAIT), an error found at once. No suspension, no ring;
//   * or prepares its submission on the core's ring and answers kAsync. The core submits
//     everything prepared in a loop turn at once (one io_uring_enter per turn, runtime/core.h),
//     and the completion replies the message on the core: the awaiting coroutine resumes there.
// Which operations try the inline path is a policy (set_inline), measured in bench/README.md.
//
// A full submission queue is backpressure, never a lost or failed message: the port submits what
// is prepared and, if the queue is still full, keeps the message in order in a backlog that goes
// out at the next loop turns.
//
// Abort (abort_msg; IoMsg is abortable from construction): a message still in the backlog is
// replied -ECANCELED at once; one in the kernel gets an async cancel, and is replied once its own
// completion is in (-ECANCELED, or its result if it finished first). Aborts are the sender's: call
// abort_msg on the core the message was sent from (the port's), where a device message lives.
//
// Stop: when its core stops, the port cancels everything in flight and reaps it, so every device
// message is replied (-ECANCELED) before the ring goes; what the kernel will not finish within a
// grace period is reported on stderr, never waited for silently.
//
// Thread-safety: a device port is used on its own core only; messages sent to it from another
// core or a plain thread are refused (-EXDEV: send them from a lightweight thread on that core).
#pragma once

#include <msgport/io/io_msg.h>
#include <msgport/ports/msg_queue.h>
#include <msgport/ports/port.h>
#include <msgport/runtime/core.h>

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

namespace msgport::io {

class BufferRing;

class DevicePort final : public Port, public Core::Device {
 public:
  // The calling core's device port. Throws std::logic_error on a thread that is not a core.
  static DevicePort& current() {
    if (current_ != nullptr) [[likely]] {
      return *current_;
    }
    return create_current();
  }

  int begin_msg(Message& m) override;
  void abort(Message& m) noexcept override;
  bool remove_queued(Message& m, bool reply) noexcept override;

  // The inline fast path: on (the default), operations that can complete without waiting are
  // tried with a nonblocking call first; off, every operation goes through the ring.
  void set_inline(bool on) noexcept { inline_ = on; }
  bool inline_enabled() const noexcept { return inline_; }

  Core& core() const noexcept { return core_; }

  // What this port did. Plain counters, written by the port's core: read them there, or take
  // them with the core's snapshot (Runtime::snapshot(core), which lists them by these names).
  // Printable: to_string(), operator<<.
  struct Counters {
    std::uint64_t inline_done = 0;  // sync: completed by the agent at once, without the ring
    std::uint64_t async = 0;        // taken (kAsync): went to the ring, or to its backlog first
    std::uint64_t refused = 0;      // answered at once without trying: sent from another thread
                                    // (-EXDEV), its core stopping (-ECANCELED), an operation the
                                    // kernel lacks (-EOPNOTSUPP)
    std::uint64_t submitted = 0;    // operations submitted to the ring (resubmissions included)
    std::uint64_t completed = 0;    // replies after the ring's completions
    std::uint64_t backlogged = 0;   // waited in the backlog for a full submission queue
    std::uint64_t aborted = 0;      // abort_msg on a message it held: taken out of the backlog
                                    // (replied -ECANCELED at once) or an async cancel sent
    std::uint64_t cancelled = 0;    // async cancels sent (aborts of operations in the kernel)
    std::uint64_t timed_out = 0;    // replies -ETIMEDOUT by a linked timeout
    std::uint64_t replied = 0;      // replies to the messages it took: completed, plus those
                                    // replied from the backlog (aborted, or the core stopping);
                                    // async - replied are in flight
    std::string to_string() const;
  };
  Counters counters() const noexcept;

  // The io_uring features the port probed at creation, on or off (in the core's snapshot too):
  //   send_zc, socket, link_timeout, async_cancel   the kernel's opcode probe;
  //   accept_multishot, recv_multishot, buf_ring    the probe lists opcodes, not their flags, so
  //       these are inferred from an opcode of the same kernel release: IORING_OP_SOCKET (5.19:
  //       multishot accept, provided buffer rings), IORING_OP_SEND_ZC (6.0: multishot recv).
  // features() lists the ones on, e.g. "send_zc socket accept_multishot ...".
  const std::string& features() const noexcept { return features_; }
  bool supports(IoOp op) const noexcept;

  // The core's default provided-buffer ring (io/buffer_ring.h), created on first use; it lives
  // as long as the port, that is as long as the core.
  BufferRing& buffer_ring();

  ~DevicePort() override;

 private:
  friend struct IoMsg::Cqe;
  explicit DevicePort(Core& core);
  static DevicePort& create_current();

  // The calling core's port: created on first use and owned by the core (Core::Device), so it
  // outlives the core's thread until the runtime goes.
  static inline thread_local DevicePort* current_ = nullptr;

  bool try_inline(IoMsg& m, int& result) noexcept;
  bool submit(IoMsg& m) noexcept;  // false: no room in the submission queue
  void completed(IoMsg& m) noexcept;
  void flush() noexcept override;
  void drain() noexcept override;
  void report(CoreSnapshot& s) const override;

  Core& core_;
  std::unique_ptr<BufferRing> ring_;
  MsgQueue backlog_;
  bool inline_ = true;
  bool draining_ = false;
  std::uint64_t unsupported_ = 0;  // IoOp bits the kernel lacks
  std::string features_;
  std::vector<CoreSnapshot::Feature> probed_;
  Counters counters_;
  // -EXDEV refusals, counted on the sender's thread (not the port's core): several writers.
  std::atomic<std::uint64_t> refused_elsewhere_{0};
};

std::ostream& operator<<(std::ostream& os, const DevicePort::Counters& c);

// The calling core's device port (DevicePort::current()).
inline DevicePort& device_port() { return DevicePort::current(); }

}  // namespace msgport::io
