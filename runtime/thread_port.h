// runtime/thread_port.h — a lightweight thread's port: a queue port owned by one core.
//
// On its own core a ThreadPort is a LocalPort: no lock, no atomic, a same-core round trip with
// no read-modify-write at all. From any other core (or thread) it is the local stand-in the
// seeds describe: a message sent to it, a reply coming back to it, or an abort of a message it
// holds is shipped to the owning core (runtime/core.h, in order per sending core) and carried out
// there. The sender sees the usual contract: do_msg parks until the reply, send_msg returns at
// once, every message is replied exactly once.
//
// drop_msg from another core cannot take a message back synchronously: it returns false and the
// message is replied as usual. close() and cancel_queued() run on the owning core.
#pragma once

#include <atomic>
#include <cstdint>

#include "ports/queue_port.h"

namespace msgport {

class Core;

class ThreadPort final : public BasicQueuePort<NullLock> {
 public:
  explicit ThreadPort(Core& owner);
  ~ThreadPort() override;

  Core& owner() const noexcept;

  int begin_msg(Message& m) override;
  void put_reply(Message& m) noexcept override;
  void abort(Message& m) noexcept override;
  bool remove_queued(Message& m, bool reply) noexcept override;

  // On the owning core: refuse new messages and reply every queued request -ECANCELED.
  void cancel_queued() noexcept;

  // Messages begun at this port: sent from its own core, and sent from other cores (or threads).
  // Counted on the owning core; readable from anywhere.
  struct Counters {
    std::uint64_t begun_local = 0;
    std::uint64_t begun_cross_core = 0;
  };
  Counters counters() const noexcept {
    return {begun_local_.load(std::memory_order_relaxed),
            begun_cross_core_.load(std::memory_order_relaxed)};
  }

 private:
  friend class Core;
  bool on_owner() const noexcept;
  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);  // one writer
  }
  std::atomic<std::uint64_t> begun_local_{0};
  std::atomic<std::uint64_t> begun_cross_core_{0};
};

}  // namespace msgport
