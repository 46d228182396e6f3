// runtime/spsc_ring.h — the bounded, lock-free queue between one sender core and one receiver.
//
// One producer thread, one consumer thread. The producer writes entries with try_push() and
// makes them visible with publish(): entries pushed since the last publish become visible
// together, so a core publishes once per batch (a loop turn), not once per message. The consumer
// takes everything visible with drain(). Neither side allocates or locks.
//
// publish() stores the tail with seq_cst so that, followed by a load of the receiver's
// "sleeping" flag, it forms the store-load half of the sleep/wake handshake (runtime/core.cc).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace msgport::detail {

template <class T>
class SpscRing {
 public:
  // capacity is rounded up to a power of two.
  explicit SpscRing(std::size_t capacity) : mask_(round_up(capacity) - 1) {
    slots_ = std::make_unique<T[]>(mask_ + 1);
  }
  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  std::size_t capacity() const noexcept { return mask_ + 1; }

  // Producer: false when the ring is full (counting unpublished entries).
  bool try_push(const T& v) noexcept {
    if (write_ - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (write_ - head_cache_ > mask_) return false;
    }
    slots_[write_ & mask_] = v;
    ++write_;
    return true;
  }

  // Producer: makes every pushed entry visible. Returns whether there was anything new.
  bool publish() noexcept {
    if (write_ == published_) return false;
    published_ = write_;
    tail_.store(write_, std::memory_order_seq_cst);
    return true;
  }

  // Consumer: is anything visible? seq_cst for the sleep handshake.
  bool empty() const noexcept {
    return tail_.load(std::memory_order_seq_cst) == head_.load(std::memory_order_relaxed);
  }

  // Consumer: calls f(entry) for everything visible now, in order; returns how many.
  template <class F>
  std::size_t drain(F&& f) {
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    std::uint64_t tail = tail_.load(std::memory_order_acquire);
    for (std::uint64_t i = head; i != tail; ++i) f(slots_[i & mask_]);
    head_.store(tail, std::memory_order_release);
    return static_cast<std::size_t>(tail - head);
  }

 private:
  static std::size_t round_up(std::size_t n) {
    std::size_t c = 2;
    while (c < n) c <<= 1;
    return c;
  }

  const std::uint64_t mask_;
  std::unique_ptr<T[]> slots_;
  // Consumer-written.
  alignas(64) std::atomic<std::uint64_t> head_{0};
  // Producer-written.
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  // Producer-private.
  alignas(64) std::uint64_t write_ = 0;
  std::uint64_t published_ = 0;
  std::uint64_t head_cache_ = 0;
};

}  // namespace msgport::detail
