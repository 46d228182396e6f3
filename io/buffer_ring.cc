#include <absl/strings/str_cat.h>
#include <msgport/io/buffer_ring.h>
#include <msgport/io/device_port.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <stdexcept>

namespace msgport::io {

BufferRing& BufferRing::current() { return DevicePort::current().buffer_ring(); }

BufferRing::BufferRing(Core& core, std::uint16_t group, std::uint16_t count, std::uint32_t size)
    : core_(core), group_(group), count_(count), size_(size) {
  if (count == 0 || (count & (count - 1)) != 0) {
    throw std::invalid_argument("msgport: a buffer ring's count is a power of two");
  }
  ring_bytes_ = sizeof(io_uring_buf) * count;
  void* mem =
      mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) throw std::bad_alloc();
  ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_);
  reg.ring_entries = count;
  reg.bgid = group;
  if (int rc = io_uring_register_buf_ring(core_.ring(), &reg, 0); rc != 0) {
    munmap(ring_, ring_bytes_);
    throw std::runtime_error(absl::StrCat("msgport: io_uring_register_buf_ring (group ", group,
                                          ") on core ", core_.id(), ": ", strerror(-rc)));
  }
  memory_ = static_cast<std::byte*>(std::aligned_alloc(4096, std::size_t{count} * size));
  io_uring_buf_ring_init(ring_);
  const int mask = io_uring_buf_ring_mask(count);
  for (std::uint16_t bid = 0; bid < count; ++bid) {
    io_uring_buf_ring_add(ring_, memory_ + std::size_t{bid} * size, size, bid, mask, bid);
  }
  io_uring_buf_ring_advance(ring_, count);
  registered_ = true;
}

BufferRing::~BufferRing() {
  unregister();
  munmap(ring_, ring_bytes_);
  std::free(memory_);
}

void BufferRing::unregister() noexcept {
  if (!registered_) return;
  registered_ = false;
  io_uring_unregister_buf_ring(core_.ring(), group_);
}

std::span<std::byte> BufferRing::take(std::uint16_t bid, std::uint32_t len) noexcept {
  ++lent_;
  return {memory_ + std::size_t{bid} * size_, std::min(len, size_)};
}

void BufferRing::recycle(std::uint16_t bid) noexcept {
  if (!registered_) return;  // the core has stopped: nobody takes buffers any more
  io_uring_buf_ring_add(ring_, memory_ + std::size_t{bid} * size_, size_, bid,
                        io_uring_buf_ring_mask(count_), 0);
  io_uring_buf_ring_advance(ring_, 1);
  --lent_;
  if (!waiting_.empty()) {
    Waiter* w = waiting_.front();
    waiting_.erase(waiting_.begin());
    w->rearm(w);
  }
}

void BufferRing::wait_for_buffers(Waiter& w) {
  ++starved_;
  if (available() > 0) {
    w.rearm(&w);
    return;
  }
  waiting_.push_back(&w);
}

void BufferRing::forget(Waiter& w) noexcept {
  waiting_.erase(std::remove(waiting_.begin(), waiting_.end(), &w), waiting_.end());
}

}  // namespace msgport::io
