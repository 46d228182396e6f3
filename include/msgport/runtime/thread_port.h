// msgport/runtime/thread_port.h — a lightweight thread's port: a queue port owned by one core.
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
//
// Lifetime: what crosses cores names the port by a handle with a generation (runtime/
// port_table.h). When the thread ends, its port is closed and its handle retired on the owning
// core (end()): queued requests and the requests the thread took and never answered are replied
// -ECANCELED, later sends are refused -ECANCELED, and entries still on their way find no port and
// are refused the same way. The port object itself lives as long as the thread's state (its
// JoinHandle): calling into it (send_msg, abort_msg) needs that much.
//
// The owner takes and answers on its own core: a request it took sits in the port's taken list
// until reply_msg or forward_msg (ports/msg_queue.h). To hand a request to code on another core,
// forward it.
#pragma once

#include <msgport/ports/port_counters.h>
#include <msgport/ports/queue_port.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

namespace msgport {

class Core;

class ThreadPort final : public BasicQueuePort<OwnedLock> {
 public:
  explicit ThreadPort(Core& owner);
  ~ThreadPort() override;

  Core& owner() const noexcept;

  int begin_msg(Message& m) override;
  void put_reply(Message& m) noexcept override;
  void abort(Message& m) noexcept override;
  bool remove_queued(Message& m, bool reply) noexcept override;
  bool collect_reply(Message& m, Waiter& w) noexcept override;

  // On the owning core: refuse new messages and reply every queued request -ECANCELED.
  void cancel_queued() noexcept;

  // Called on the owning core when an abort arrives for a request the thread has taken and not
  // yet answered, so that long work can stop early (reply it -ECANCELED, say). Optional: the
  // request's abort_requested() is set either way, for the thread to poll (the seeds'
  // MSGF_ABORTED). Set it on the owning core; it must not throw.
  void on_abort(std::function<void(Message&)> handler) { on_abort_ = std::move(handler); }

  // On the owning core, when the thread ends: cancel_all() (ports/queue_port.h) and retire the
  // handle, so that entries still on their way are refused without touching this port.
  void end() noexcept;

  // What this port did with the messages sent to it: the counters of every queueing port
  // (ports/port_counters.h: sync is always 0 here, async, queued, refused, aborted, cancelled,
  // replies) and where the requests came from. Counted on the owning core (a refusal also on a
  // sender's core, when the owning core has stopped); readable from anywhere, a snapshot.
  struct Counters : PortCounters {
    std::uint64_t begun_local = 0;       // sent from its own core: the agent ran in the sender's
                                         // context, inline
    std::uint64_t begun_cross_core = 0;  // sent from another core (or a plain thread): carried
                                         // over by the runtime and begun on the owning core
    // queued: of those begun, waited in the queue (the thread was busy); the rest went straight
    // to the waiting thread. refused: answered -ECANCELED at once: the port was closed, its core
    // had stopped, or the sender had already aborted the message (not counted: sends still in a
    // ring when the runtime stopped, which the stopping core replies -ECANCELED itself).
    // aborted: queued requests an abort took out, from any core.

    std::string to_string() const;
  };
  Counters counters() const noexcept {
    Counters c;
    static_cast<PortCounters&>(c) = BasicQueuePort<OwnedLock>::counters();
    c.refused += refused_elsewhere_.load(std::memory_order_relaxed);
    c.begun_local = begun_local_.get();
    c.begun_cross_core = begun_cross_core_.get();
    return c;
  }

 private:
  friend class Core;
  bool on_owner() const noexcept;
  std::uint64_t handle() const noexcept { return route_; }
  // On the owning core: begin m here, counted as local or cross-core.
  int begin_here(Message& m, bool cross_core);
  // On the owning core: an abort for send `send` of the message at address m, if it is still
  // queued here (found by address, read only once found).
  void abort_queued(const void* m, std::uint32_t send) noexcept;
  // Bumped on the owning core only (detail::Count: one writer).
  detail::Count begun_local_;
  detail::Count begun_cross_core_;
  // Refusals on senders' cores (the owning core had stopped): several writers, a fetch_add.
  std::atomic<std::uint64_t> refused_elsewhere_{0};
  bool ended_ = false;  // end() ran: the handle is retired
  std::function<void(Message&)> on_abort_;
};

std::ostream& operator<<(std::ostream& os, const ThreadPort::Counters& c);

}  // namespace msgport
