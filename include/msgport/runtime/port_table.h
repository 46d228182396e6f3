// msgport/runtime/port_table.h — names for the thread ports of one core that stay safe after the
// port is gone: a handle with a generation.
//
// A cross-core entry (runtime/core.h) may be handled microseconds after it was sent, when the
// thread whose port it names has ended and its port has been freed. So entries name a thread
// port by handle, not by pointer: a slot index and the slot's generation. The owning core looks
// the handle up when it handles the entry; a port that was removed (its thread ended) bumped the
// generation, so the lookup fails and the entry is refused (a send replied -ECANCELED, a reply
// only completed, an abort dropped) without touching the port.
//
// add() may be called from any thread (spawn); remove() and find() run on the owning core only.
// Slots live in chunks that never move, so find() needs no lock; add() and remove() take a short
// spin lock (held for a few stores, once at each end of a thread's life).
#pragma once

#include <msgport/ports/spin_lock.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace msgport {

class ThreadPort;

namespace detail {

class PortTable {
 public:
  PortTable() = default;
  PortTable(const PortTable&) = delete;
  PortTable& operator=(const PortTable&) = delete;
  ~PortTable() {
    for (auto& c : chunks_) delete[] c.load(std::memory_order_relaxed);
  }

  // A handle for port, valid until remove(handle). Throws std::length_error when full.
  std::uint64_t add(ThreadPort* port) {
    std::lock_guard lock(mu_);
    std::uint32_t index;
    if (!free_.empty()) {
      index = free_.back();
      free_.pop_back();
    } else {
      index = next_;
      std::size_t chunk = index >> kChunkBits;
      if (chunk >= kMaxChunks) throw std::length_error("msgport: too many thread ports on a core");
      if (chunks_[chunk].load(std::memory_order_relaxed) == nullptr) {
        chunks_[chunk].store(new Slot[kChunkSize], std::memory_order_release);
      }
      ++next_;
    }
    Slot& s = slot(index);
    s.port.store(port, std::memory_order_release);
    return (std::uint64_t{s.gen.load(std::memory_order_relaxed)} << 32) | index;
  }

  // On the owning core: the handle names nothing from now on.
  void remove(std::uint64_t handle) {
    std::lock_guard lock(mu_);
    auto index = static_cast<std::uint32_t>(handle);
    Slot& s = slot(index);
    if (s.gen.load(std::memory_order_relaxed) != static_cast<std::uint32_t>(handle >> 32)) return;
    s.port.store(nullptr, std::memory_order_relaxed);
    std::uint32_t gen = s.gen.load(std::memory_order_relaxed);
    s.gen.store(gen + 1, std::memory_order_release);  // single writer: under mu_
    free_.push_back(index);
  }

  // On the owning core: the port the handle names, or nullptr once it was removed.
  ThreadPort* find(std::uint64_t handle) const noexcept {
    auto index = static_cast<std::uint32_t>(handle);
    Slot* chunk = chunks_[index >> kChunkBits].load(std::memory_order_acquire);
    if (chunk == nullptr) return nullptr;
    const Slot& s = chunk[index & (kChunkSize - 1)];
    if (s.gen.load(std::memory_order_acquire) != static_cast<std::uint32_t>(handle >> 32)) {
      return nullptr;
    }
    return s.port.load(std::memory_order_acquire);
  }

 private:
  static constexpr unsigned kChunkBits = 10;
  static constexpr std::uint32_t kChunkSize = 1u << kChunkBits;
  static constexpr std::size_t kMaxChunks = 1u << 14;  // 16 M ports on one core at once

  struct Slot {
    std::atomic<ThreadPort*> port{nullptr};
    std::atomic<std::uint32_t> gen{0};
  };

  Slot& slot(std::uint32_t index) noexcept {
    return chunks_[index >> kChunkBits].load(std::memory_order_acquire)[index & (kChunkSize - 1)];
  }

  SpinLock mu_;
  std::vector<std::uint32_t> free_;
  std::uint32_t next_ = 0;
  std::array<std::atomic<Slot*>, kMaxChunks> chunks_{};
};

}  // namespace detail
}  // namespace msgport
