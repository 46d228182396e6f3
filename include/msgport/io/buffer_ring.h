// msgport/io/buffer_ring.h — a provided-buffer ring: buffers the kernel picks from for multishot
// recv, so that an idle connection holds no receive buffer.
//
// A BufferRing registers `count` buffers of `size` bytes each with its core's io_uring under a
// group id. A multishot recv (IoOp::kRecvMulti) naming the group gets one buffer per completion;
// the receiver hands it back with recycle() once it is done with the bytes. When every buffer is
// lent out the kernel ends multishot recvs with -ENOBUFS; their owners wait for buffers
// (wait_for_buffers) and are re-armed as soon as one comes back.
//
// BufferRing::current() is the calling core's default ring (group 0), created on first use with
// kDefaultCount buffers of kDefaultSize bytes and owned by the core's device port, so it lives as
// long as the core. A ring is used on its own core only. The memory is allocated once, at
// creation; nothing else allocates.
#pragma once

#include <liburing.h>
#include <msgport/runtime/core.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace msgport::io {

class BufferRing {
 public:
  static constexpr std::uint16_t kDefaultCount = 1024;
  static constexpr std::uint32_t kDefaultSize = 4096;

  // The calling core's default ring. Throws std::logic_error off a core, std::runtime_error if
  // the kernel refuses the registration.
  static BufferRing& current();

  BufferRing(Core& core, std::uint16_t group, std::uint16_t count, std::uint32_t size);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  std::uint16_t group() const noexcept { return group_; }
  std::uint32_t buffer_size() const noexcept { return size_; }
  std::uint16_t count() const noexcept { return count_; }
  // Buffers the kernel may still pick from.
  std::uint32_t available() const noexcept { return count_ - lent_; }

  // The bytes of buffer `bid` a completion filled (len of them); the buffer is lent to the caller
  // until recycle(bid).
  std::span<std::byte> take(std::uint16_t bid, std::uint32_t len) noexcept;
  // Gives buffer `bid` back to the kernel, and re-arms one receiver that waits for buffers.
  void recycle(std::uint16_t bid) noexcept;

  // A receiver whose multishot ended for want of buffers: rearm(arg) is called (on the core)
  // once a buffer is back. forget() takes a waiter off (it is going away).
  struct Waiter {
    void (*rearm)(Waiter*) noexcept = nullptr;
  };
  void wait_for_buffers(Waiter& w);
  void forget(Waiter& w) noexcept;

  // The core is stopping (DevicePort::drain): the kernel lets go of the ring. Buffers handed
  // back afterwards go nowhere; the memory stays until the ring is destroyed.
  void unregister() noexcept;

  // Counters.
  std::uint64_t starved() const noexcept { return starved_; }  // multishots ended with ENOBUFS

 private:
  Core& core_;
  io_uring_buf_ring* ring_ = nullptr;
  std::byte* memory_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::uint16_t group_;
  std::uint16_t count_;
  std::uint32_t size_;
  std::uint32_t lent_ = 0;
  std::uint64_t starved_ = 0;
  std::vector<Waiter*> waiting_;
  bool registered_ = false;
};

}  // namespace msgport::io
