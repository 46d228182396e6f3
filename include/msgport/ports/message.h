// msgport/ports/message.h — the message: an embeddable header the sender owns.
//
// Users derive their own message types and keep them where they like, usually in the sending
// coroutine's frame:
//
//     struct ReadMsg : msgport::Message { int fd; std::span<std::byte> buf; };
//
// msgport never allocates a message and never copies one: ports link messages through the
// intrusive header below. A message belongs to one party at a time — the sender until the
// target port's agent begins it, the agent (or whoever it forwarded to) until the reply, the
// sender again once it is done. The sender must keep it alive, and not touch its payload,
// while it is in flight.
//
// The result is an int in the io_uring / DragonFly ms_error style: >= 0 a value, < 0 a -errno.
// kAsync is not a result: it is what an agent answers when it took the message.
//
// Flags (flags()):
//   kMsgPriority, kMsgAbortable, kMsgDropable  options the sender sets before sending
//   kMsgSyncHint     sent by do_msg: the sender waits on this very message
//   kMsgInFlight     it has been sent (and, unless kMsgDone, not yet replied)
//   kMsgQueued       it sits in a port's queue (a request not yet begun, or a queued reply)
//   kMsgDone         its result is final; it belongs to the sender again
//   kMsgReplied      it came back through reply_msg (an agent that acted at once does not reply)
//   kMsgAbortRequested  abort_msg was called while it was in flight
//
// Thread-safety: the state word is atomic, so a reply, an abort request and the sender's wait
// may race from different threads; everything else is touched by the current owner only.
//
// Sends that may be answered on another core are numbered (send(): a port that ships messages
// elsewhere, like the runtime's thread port, numbers them): a request naming a send made earlier
// (a cross-core abort still on its way when the message was replied, and it or a new message at
// the same address was sent again) is recognised as stale and dropped. The numbers are unique
// in the process (detail::next_send_number) until they wrap, after 2^32 sends: two sends in
// flight at once never share one, whoever makes them.
// The synchronous path does not pay for them.
//
// Size: 72 bytes, a whole number of 8-byte words; nothing in it is allocated.
#pragma once

#include <msgport/ports/context.h>

#include <atomic>
#include <climits>
#include <cstdint>

namespace msgport {

class Port;
class MsgQueue;
namespace detail {
struct MsgAccess;
}

// What an agent's begin_msg returns when it took the message instead of acting at once.
inline constexpr int kAsync = INT_MIN;

enum MsgFlag : std::uint32_t {
  kMsgPriority = 1u << 0,
  kMsgAbortable = 1u << 1,
  kMsgDropable = 1u << 2,
  kMsgSyncHint = 1u << 3,
  kMsgInFlight = 1u << 4,
  kMsgQueued = 1u << 5,
  kMsgDone = 1u << 6,
  kMsgReplied = 1u << 7,
  kMsgAbortRequested = 1u << 8,
};
// The state bits flags() shows; higher ones are the runtime's own.
inline constexpr std::uint32_t kPublicStateBits = (1u << 9) - 1;

// The intrusive link ports queue messages by. `queue` names the queue the message is linked in
// (nullptr: none); it is atomic so that anyone may ask "is it in *my* queue?" while the queue
// that does hold it changes it under its own lock.
struct MsgLink {
  MsgLink* next = nullptr;
  MsgLink* prev = nullptr;
  std::atomic<const void*> queue{nullptr};
};

class Message : private MsgLink {
 public:
  Message() = default;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;

  // The result once done(): >= 0 a value, < 0 a -errno.
  int result() const noexcept { return result_; }

  // True once the result is final (check_msg). Acquires the replier's writes.
  bool done() const noexcept { return state_.load(std::memory_order_acquire) & kMsgDone; }

  // True while the message has been sent and not yet completed.
  bool in_flight() const noexcept {
    std::uint32_t s = state_.load(std::memory_order_acquire);
    return (s & kMsgInFlight) && !(s & kMsgDone);
  }

  // For an agent: has the sender asked to abort this message?
  bool abort_requested() const noexcept {
    return state_.load(std::memory_order_acquire) & kMsgAbortRequested;
  }

  // A snapshot of all flags (see the table above).
  std::uint32_t flags() const noexcept {
    std::uint32_t s = state_.load(std::memory_order_acquire) & kPublicStateBits;
    bool queued = MsgLink::queue.load(std::memory_order_acquire) != nullptr;
    return options_ | s | (queued ? kMsgQueued : 0u);
  }

  // Options, set by the sender while it owns the message. They persist across sends.
  void set_priority(bool on) noexcept { set_option(kMsgPriority, on); }
  void set_abortable(bool on) noexcept { set_option(kMsgAbortable, on); }
  void set_dropable(bool on) noexcept { set_option(kMsgDropable, on); }
  bool priority() const noexcept { return options_ & kMsgPriority; }

  // Where send_msg's reply goes. nullptr: nowhere — the reply only marks the message done.
  void set_reply_port(Port* port) noexcept { reply_port_ = port; }
  Port* reply_port() const noexcept { return reply_port_; }

  // The port whose agent currently holds the message (its target, or where it was forwarded).
  Port* holder() const noexcept { return holder_.load(std::memory_order_acquire); }

  // Which send of this message is (or was last) in flight: a number that changes with every send
  // to a port that may answer it on another core. Read it on the sender's side, or where the
  // message is held.
  std::uint32_t send() const noexcept { return send_.load(std::memory_order_relaxed); }

 private:
  friend class MsgQueue;
  friend struct detail::MsgAccess;

  void set_option(std::uint32_t bit, bool on) noexcept {
    options_ = static_cast<std::uint16_t>(on ? (options_ | bit) : (options_ & ~bit));
  }

  std::atomic<Port*> holder_{nullptr};
  Port* reply_port_ = nullptr;
  Waiter* waiter_ = nullptr;             // valid while kMsgParked is set
  Context* held_on_ = nullptr;           // valid while kHeldLocally is set: the one context
  std::atomic<std::uint32_t> state_{0};  // kMsgSyncHint | kMsgInFlight | kMsgDone | ... | kParked
  std::atomic<std::uint32_t> send_{0};   // the send's number, from ports that ship it (send())
  std::uint16_t options_ = 0;            // kMsgPriority | kMsgAbortable | kMsgDropable
  int result_ = 0;
};

}  // namespace msgport
