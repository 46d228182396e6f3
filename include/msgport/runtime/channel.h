// msgport/runtime/channel.h — a bounded channel of T between lightweight threads on any cores.
//
//   Channel<std::string> ch(64);                 // up to 64 values buffered; 0: rendezvous
//   int r = co_await ch.send(std::move(s));      // 0 sent; -EPIPE the channel is closed
//   while (std::optional<std::string> v = co_await ch.recv()) use(*v);   // until closed+drained
//   ch.close();
//
// Many producers and many consumers, on any cores (and plain threads: send_blocking,
// recv_blocking). A send and a receive are messages sent to the channel, which is a port:
// Channel::SendMsg carries the value, Channel::RecvMsg has room for one; send() and recv() keep
// them in the awaiter, in the coroutine's frame. The agent acts at once when it can:
//   send: a receiver is waiting -> the value goes straight to it (moved into its RecvMsg) and
//         its request is replied 0; else there is room in the ring -> moved in. Either way the
//         send completes inline (0), with no suspension. Else the sender waits (ring full).
//   recv: the ring has a value -> moved out (and the first waiting sender's value moved into the
//         room it left, that sender replied 0); else a sender waits (capacity 0) -> its value
//         directly; either way inline. Else the receiver waits (ring empty).
// A waiter is replied on its own core: directly inside the call that served it when that runs on
// the waiter's core (within the core's budget of direct resumptions), else through its inbox.
// Waiting senders and receivers are each served FIFO (kMsgPriority goes ahead); values from one
// sender arrive in the order sent.
//
// Capacity: any size >= 0, fixed at construction, which allocates the ring (capacity values)
// once. Capacity 0 is a rendezvous: every send waits for a receiver (or finds one waiting).
// Nothing else allocates: no allocation per send or receive.
//
// Values are moved, never copied: T must be nothrow move-constructible (values are moved while
// the channel's spin lock is held, so keep moves cheap). Each value sent (result 0) is received
// exactly once, or destroyed with the channel if nobody received it.
//
// close(): new sends fail -EPIPE (the value stays in the sender's SendMsg); waiting senders are
// replied -EPIPE (their values were not sent); waiting receivers are replied -EPIPE, and later
// receives still drain what is buffered before they get -EPIPE (recv(): std::nullopt). Calling
// close() twice is harmless.
//
// Aborts and deadlines follow the message rules: co_await do_msg_until(ch, m, deadline) (or
// abort_msg(m) from the sender's core) with a SendMsg or RecvMsg of your own. A request still
// waiting is taken out and replied -ECANCELED (-ETIMEDOUT for a deadline): a send's value was not
// sent (it is still in m.value), a receive got nothing and never will. A request already served
// keeps its result 0: the value was sent (received, in m.value). No value is lost or delivered
// twice: the channel's lock decides which came first.
//
// Only SendMsg and RecvMsg may be sent to a Channel. A lightweight thread destroyed while it
// waits takes its request back out of the queue (a waiting send's value goes with its frame). A
// receiver whose core stop has sealed is never handed a value (it would go with its frame): it is
// replied -ECANCELED and the value goes to the next receiver, or the ring.
// Destroying a Channel while requests wait fails loudly in every build (close() it first: that
// replies every waiter), unless every waiter's core has been sealed by stop (stop(kCancel)
// destroying the channel's frame before theirs): those are replied -ECANCELED.
//
// Thread-safety: every member may be called from any thread or core.
#pragma once

#include <msgport/ports/check.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/spin_lock.h>
#include <msgport/runtime/sync_request.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

namespace msgport {

template <class T>
class Channel final : public Port {
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "Channel<T>: T must be nothrow move-constructible (values are moved, never "
                "copied, under the channel's lock)");

 public:
  // The common header of SendMsg and RecvMsg: the agent's half for its kind. (A function of the
  // kind, not a flag: the compiler then never sees a SendMsg taken for a RecvMsg on a path it
  // cannot rule out, which g++ 12 at -O3 reports as an out-of-bounds access.)
  class Op : public Message {
   protected:
    using Begin = int (*)(Channel&, Op&) noexcept;
    explicit Op(Begin begin) noexcept : begin_(begin) {}

   private:
    friend class Channel;
    Begin begin_;
  };
  // A send: result 0 once value was moved into the channel (or to a receiver).
  struct SendMsg : Op {
    explicit SendMsg(T v) noexcept
        : Op([](Channel& ch, Op& op) noexcept { return ch.begin_send(static_cast<SendMsg&>(op)); }),
          value(std::move(v)) {}
    T value;
  };
  // A receive: result 0 with value set; -EPIPE once the channel is closed and drained.
  struct RecvMsg : Op {
    RecvMsg() noexcept
        : Op([](Channel& ch, Op& op) noexcept {
            return ch.begin_recv(static_cast<RecvMsg&>(op));
          }) {}
    std::optional<T> value;
  };

  explicit Channel(std::size_t capacity)
      : ring_(capacity > 0 ? std::make_unique<Slot[]>(capacity) : nullptr), capacity_(capacity) {}
  ~Channel() override {
    detail::end_waiters(guard_, {&senders_, &receivers_},
                        "a Channel was destroyed while sends or receives wait on it: close() it "
                        "first (that replies every waiter -EPIPE)");
    while (count_ > 0) std::destroy_at(take_front());
  }

  int begin_msg(Message& m) override {
    Op& op = static_cast<Op&>(m);
    return op.begin_(*this, op);
  }

  void abort(Message& m) noexcept override {
    if (remove_queued(m, false)) reply_msg(m, -ECANCELED);
  }
  bool remove_queued(Message& m, bool reply) noexcept override {
    if (reply) return false;
    std::lock_guard lock(guard_);
    return senders_.remove(m) || receivers_.remove(m);
  }

  // co_await ch.send(v): 0 once v is in the channel (or with a receiver); -EPIPE if the channel
  // is closed (v was not sent).
  class [[nodiscard]] SendAwaiter : public detail::SyncRequest<Channel, SendMsg> {
   public:
    SendAwaiter(Channel& ch, T v) noexcept
        : detail::SyncRequest<Channel, SendMsg>(ch, std::move(v)) {}
    int await_resume() noexcept { return this->finish(); }
  };
  SendAwaiter send(T value) noexcept { return SendAwaiter(*this, std::move(value)); }

  // co_await ch.recv(): the next value; std::nullopt once the channel is closed and drained.
  class [[nodiscard]] RecvAwaiter : public detail::SyncRequest<Channel, RecvMsg> {
   public:
    explicit RecvAwaiter(Channel& ch) noexcept : detail::SyncRequest<Channel, RecvMsg>(ch) {}
    std::optional<T> await_resume() noexcept {
      this->finish();
      return std::move(this->msg().value);
    }
  };
  RecvAwaiter recv() noexcept { return RecvAwaiter(*this); }

  // Never waits. 0: value was moved into the channel (or to a waiting receiver); -EAGAIN: full
  // (no waiting receiver), -EPIPE: closed — in both value is left as it was.
  int try_send(T&& value) noexcept {
    Message* r;
    MsgQueue gone;
    int result = 0;
    {
      std::lock_guard lock(guard_);
      if (closed_.load(std::memory_order_relaxed)) return -EPIPE;
      r = pop_receiver(gone);
      if (r == nullptr) {
        if (count_ == capacity_) {
          result = -EAGAIN;
        } else {
          push_back(std::move(value));
        }
      }
    }
    detail::refuse_all(gone);
    if (r != nullptr) hand_over(std::move(value), *r);
    return result;
  }

  // Never waits: the next value if one is buffered (or a sender waits with one), else nullopt.
  std::optional<T> try_recv() noexcept {
    RecvMsg m;
    int r = begin_recv(m, /*may_wait=*/false);
    if (r == 0) return std::move(m.value);
    return std::nullopt;
  }

  // For plain threads: block (without spinning) until sent / received. On a core they throw
  // std::logic_error (they would block the core).
  int send_blocking(T value) {
    detail::refuse_blocking_on_a_core("Channel::send_blocking()");
    SendMsg m(std::move(value));
    return do_msg_blocking(*this, m);
  }
  std::optional<T> recv_blocking() {
    detail::refuse_blocking_on_a_core("Channel::recv_blocking()");
    RecvMsg m;
    do_msg_blocking(*this, m);
    return std::move(m.value);
  }

  // See the top of this file.
  void close() noexcept {
    MsgQueue senders, receivers;  // queues of our own: an abort finds the requests gone
    {
      std::lock_guard lock(guard_);
      closed_.store(true, std::memory_order_release);
      while (Message* m = senders_.pop()) senders.push(*m);
      while (Message* m = receivers_.pop()) receivers.push(*m);
    }
    // Replies may resume waiters here, and one of them may destroy the channel: from now on
    // only the local queues are touched.
    while (Message* m = senders.pop()) reply_msg(*m, -EPIPE);
    while (Message* m = receivers.pop()) reply_msg(*m, -EPIPE);
  }

  // Snapshots, for tests and diagnostics.
  bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t size() const noexcept {
    std::lock_guard lock(guard_);
    return count_;
  }
  std::size_t waiting_senders() const noexcept {
    std::lock_guard lock(guard_);
    return senders_.size();
  }
  std::size_t waiting_receivers() const noexcept {
    std::lock_guard lock(guard_);
    return receivers_.size();
  }

 private:
  template <class, class, bool>
  friend class detail::SyncRequest;
  // A send was delivered; a receive's value goes with the frame of the thread that is gone.
  void unclaimed_grant(Message&) noexcept {}

  struct Slot {
    alignas(T) std::byte bytes[sizeof(T)];
  };
  T* slot(std::size_t i) noexcept { return std::launder(reinterpret_cast<T*>(ring_[i].bytes)); }
  void push_back(T&& v) noexcept {
    std::size_t tail = head_ + count_;
    if (tail >= capacity_) tail -= capacity_;
    ::new (static_cast<void*>(ring_[tail].bytes)) T(std::move(v));
    ++count_;
  }
  // The front value, left for the caller to move from and destroy.
  T* take_front() noexcept {
    T* v = slot(head_);
    if (++head_ == capacity_) head_ = 0;
    --count_;
    return v;
  }

  // Under guard_: the first waiting receiver that can still take a value; those whose core has
  // finished go onto `gone`, to be refused -ECANCELED after the lock (detail::can_take_grant): a
  // value handed to them would be lost with their frames.
  Message* pop_receiver(MsgQueue& gone) noexcept {
    Message* r;
    while ((r = receivers_.pop()) != nullptr && !detail::can_take_grant(*r)) gone.push(*r);
    return r;
  }

  // The receiver r, out of the queue, is ours alone until its reply.
  static void hand_over(T&& v, Message& r) noexcept {
    auto& recv = static_cast<RecvMsg&>(r);
    recv.value.emplace(std::move(v));
    reply_msg(recv, 0);  // may resume the receiver here: the channel is not touched after it
  }

  int begin_send(SendMsg& s) noexcept {
    Message* r;
    MsgQueue gone;
    int result = 0;
    {
      std::lock_guard lock(guard_);
      if (closed_.load(std::memory_order_relaxed)) return -EPIPE;
      r = pop_receiver(gone);
      if (r == nullptr) {
        if (count_ < capacity_) {
          push_back(std::move(s.value));
        } else {
          senders_.push(s);
          result = kAsync;
        }
      }
    }
    detail::refuse_all(gone);
    if (r != nullptr) hand_over(std::move(s.value), *r);
    return result;
  }

  int begin_recv(RecvMsg& r, bool may_wait = true) noexcept {
    r.value.reset();
    Message* w;
    {
      std::lock_guard lock(guard_);
      w = senders_.pop();
      if (count_ > 0) {
        T* v = take_front();
        r.value.emplace(std::move(*v));
        std::destroy_at(v);
        // The room it left goes to the first waiting sender, in order.
        if (w != nullptr) push_back(std::move(static_cast<SendMsg*>(w)->value));
      } else if (w == nullptr) {
        if (closed_.load(std::memory_order_relaxed)) return -EPIPE;
        if (!may_wait) return -EAGAIN;
        receivers_.push(r);
        return kAsync;
      } else {
        // Nothing buffered but a sender waits (capacity 0): its value, straight across. The
        // sender, out of the queue, is ours alone until its reply.
        r.value.emplace(std::move(static_cast<SendMsg*>(w)->value));
      }
    }
    if (w != nullptr) reply_msg(*w, 0);
    return 0;
  }

  mutable SpinLock guard_;  // guards everything below but closed_'s reads
  std::unique_ptr<Slot[]> ring_;
  const std::size_t capacity_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  MsgQueue senders_;                 // waiting sends (the ring is full)
  MsgQueue receivers_;               // waiting receives (the ring is empty, no sender waits)
  std::atomic<bool> closed_{false};  // written under guard_
};

}  // namespace msgport
