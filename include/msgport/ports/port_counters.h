// msgport/ports/port_counters.h — what a port did with the messages sent to it.
//
// Every port kind that queues counts (QueuePort, LocalPort, ReplyPort, SerializedPort, the
// runtime's ThreadPort; the io DevicePort has counters of its own, io/device_port.h):
//
//   sync       requests the agent ran inline, in the sender's context (SerializedPort: F run
//              inline, whatever it answered). A plain queue port never does.
//   async      requests the agent took (kAsync): queued, or handed to its owner waiting in
//              wait_port.
//   queued     of those, the ones that waited in the queue (the owner was not waiting).
//   refused    requests answered -ECANCELED at once: the port was closed (or its core had
//              stopped), or the sender had aborted the message before sending it.
//   aborted    queued requests abort_msg took back out, replied -ECANCELED.
//   cancelled  requests answered -ECANCELED because the port closed for good while it held them,
//              queued or taken by the owner (cancel_all: the port's destruction, a thread's end,
//              stop(kCancel)).
//   replies    replies that came back to this port as a message's reply port.
//
// Counting is cheap: each counter is bumped by one writer at a time (the port's one context, or
// whoever holds the port's lock; detail::Count), with a relaxed load and store — on x86 a plain
// increment, no read-modify-write. A snapshot may be read from any thread; its fields are each
// exact but taken one by one, so a snapshot taken while messages flow may be a few apart.
//
// Printable: c.to_string() gives "sync=0 async=3 queued=1 ...", and so does `os << c`.
#pragma once

#include <atomic>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace msgport {

struct PortCounters {
  std::uint64_t sync = 0;
  std::uint64_t async = 0;
  std::uint64_t queued = 0;
  std::uint64_t refused = 0;
  std::uint64_t aborted = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t replies = 0;

  std::string to_string() const;
};

std::ostream& operator<<(std::ostream& os, const PortCounters& c);

namespace detail {

// A counter with one writer at a time (a single context, or the holder of a lock), read from any
// thread: the bump is a relaxed load and store, not a read-modify-write. Two writers at once
// would lose counts: every counter says in its port which lock or context makes it single-writer.
class Count {
 public:
  void bump(std::uint64_t n = 1) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);  // one writer
  }
  std::uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

// A port's counter words; read() takes the snapshot. The ones bumped per message come first,
// so that they share a cache line with the port's queue state.
struct PortCounts {
  Count async, queued, replies, sync, refused, aborted, cancelled;

  PortCounters read() const noexcept {
    return {sync.get(),    async.get(),     queued.get(), refused.get(),
            aborted.get(), cancelled.get(), replies.get()};
  }
};

}  // namespace detail

}  // namespace msgport
