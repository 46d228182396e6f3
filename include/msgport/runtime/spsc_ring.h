// msgport/runtime/spsc_ring.h — the bounded, lock-free queue between one sender core and one
// receiver.
//
// One producer thread, one consumer thread; neither allocates or locks. The producer writes
// entries with try_push() and makes them visible with publish(), once per batch (a loop turn),
// not once per message. Each slot carries a sequence number next to its entry, stored by
// publish(); the consumer polls the number of the one slot it reads next. Measured here:
//   * polling the slot rather than a separate tail line halves a ring round trip (about 450 ns
//     to 260 ns, the cost of two cache lines bounced between two cores, which bench/
//     runtime_bench.cc measures as BM_RawPingPongTwoLines);
//   * making a batch visible at once, rather than each entry as it is pushed, keeps the receiver
//     off the lines the sender is still writing (slots, and the messages they point to): per-entry
//     visibility cost a third of the cross-core throughput.
//
// publish() ends with the producer's half of the sleep/wake handshake (runtime/core.cc): a
// seq_cst store of how far it has published, followed by a load of the receiver's "sleeping"
// flag. A consumer about to sleep stores "sleeping", then checks empty(), which loads that count
// seq_cst: one of the two always sees the other.
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
    slots_ = std::make_unique<Slot[]>(mask_ + 1);
  }
  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  std::size_t capacity() const noexcept { return mask_ + 1; }

  // Producer: false when the ring is full. The entry stays invisible until publish().
  bool try_push(const T& v) noexcept {
    if (write_ - head_cache_ > mask_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (write_ - head_cache_ > mask_) return false;
    }
    slots_[write_ & mask_].value = v;
    ++write_;
    return true;
  }

  // Producer: can try_push() succeed now? (A producer waiting for the consumer polls this.)
  bool has_room() noexcept {
    if (write_ - head_cache_ <= mask_) return true;
    head_cache_ = head_.load(std::memory_order_acquire);
    return write_ - head_cache_ <= mask_;
  }

  // Producer: makes every pushed entry visible, in order (each slot's sequence number), then
  // records (seq_cst) how far it has published, for a consumer about to sleep. Returns whether
  // there was anything new. Publishing a batch at once, rather than each entry as it is pushed,
  // keeps the receiver off the lines (ring slots, and the messages they point to) the sender is
  // still writing: measured, per-entry visibility cost a third of the cross-core throughput.
  bool publish() noexcept {
    if (write_ == published_) return false;
    for (std::uint64_t i = published_; i != write_; ++i) {
      slots_[i & mask_].seq.store(i + 1, std::memory_order_release);
    }
    published_ = write_;
    tail_.store(write_, std::memory_order_seq_cst);
    return true;
  }

  // Consumer: is the next entry there? Polls only the slot it will read, so a busy consumer
  // touches one cache line the producer writes, the one that carries the entry.
  bool ready() const noexcept {
    std::uint64_t h = head_.load(std::memory_order_relaxed);
    return slots_[h & mask_].seq.load(std::memory_order_acquire) == h + 1;
  }

  // Consumer, about to sleep: is anything published? seq_cst: the sleep handshake's other half.
  // (Mid-publish the consumer may already have taken entries whose count is not stored yet: head
  // ahead of that count is empty too.)
  bool empty() const noexcept {
    return tail_.load(std::memory_order_seq_cst) <= head_.load(std::memory_order_relaxed) &&
           !ready();
  }

  // Consumer: calls f(entry) for the entries there now, in order (at most one ring's worth);
  // returns how many. An entry's slot is reused only after f returns.
  template <class F>
  std::size_t drain(F&& f) {
    const std::uint64_t first = head_.load(std::memory_order_relaxed);
    std::uint64_t h = first;
    for (std::uint64_t end = first + mask_ + 1; h != end; ++h) {
      Slot& s = slots_[h & mask_];
      if (s.seq.load(std::memory_order_acquire) != h + 1) break;
      f(s.value);
    }
    if (h != first) head_.store(h, std::memory_order_release);
    return static_cast<std::size_t>(h - first);
  }

 private:
  struct Slot {
    std::atomic<std::uint64_t> seq{0};  // i + 1 once entry i (counting from 0) is in the slot
    T value{};
  };

  static std::size_t round_up(std::size_t n) {
    std::size_t c = 2;
    while (c < n) c <<= 1;
    return c;
  }

  const std::uint64_t mask_;
  std::unique_ptr<Slot[]> slots_;
  // Consumer-written.
  alignas(64) std::atomic<std::uint64_t> head_{0};
  // Producer-written, once per batch; read by the consumer only before it sleeps.
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  // Producer-private.
  alignas(64) std::uint64_t write_ = 0;
  std::uint64_t published_ = 0;
  std::uint64_t head_cache_ = 0;
};

}  // namespace msgport::detail
