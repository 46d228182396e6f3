// msgport/ports/msg_queue.h — the intrusive message queue every queueing port is built on.
//
// FIFO, except that priority messages (kMsgPriority) go ahead of all non-priority ones, FIFO
// among themselves. Push, pop and remove are O(1) and allocate nothing: the links live in the
// message header. Not thread-safe: the owning port guards it.
//
// A taken list (MsgQueue(MsgQueue::kTaken)) uses the same links for the requests a port's owner
// has taken and not yet answered (runtime/thread_port.h keeps one, so that a thread that ends
// replies what it still holds). reply_msg and forward_msg take a message out of the taken list it
// is in (leave_taken), on the thread that took it: that thread alone touches its list.
#pragma once

#include <msgport/ports/check.h>
#include <msgport/ports/message.h>

#include <cstddef>

namespace msgport {

class MsgQueue {
 public:
  enum Kind : bool { kQueue = false, kTaken = true };
  // A taken list names the context it belongs to: its requests are answered there.
  explicit MsgQueue(Kind kind = kQueue, Context* context = nullptr) noexcept
      : context_(context), taken_(kind) {
    init(prio_);
    init(normal_);
  }
  MsgQueue(const MsgQueue&) = delete;
  MsgQueue& operator=(const MsgQueue&) = delete;

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  void push(Message& m) noexcept {
    MsgLink* link = &m;
    MSGPORT_CHECK_RULE(link->queue.load(std::memory_order_relaxed) == nullptr,
                       "a message sits in one queue at a time");
    link->queue.store(this, std::memory_order_release);
    MsgLink& head = m.priority() ? prio_ : normal_;
    link->prev = head.prev;
    link->next = &head;
    head.prev->next = link;
    head.prev = link;
    ++size_;
  }

  // The next message (priority first), still linked; nullptr when empty.
  Message* front() noexcept {
    MsgLink* first = prio_.next != &prio_ ? prio_.next : normal_.next;
    return first == &normal_ ? nullptr : static_cast<Message*>(first);
  }

  // The next message (priority first), unlinked; nullptr when empty.
  Message* pop() noexcept {
    MsgLink* first = prio_.next != &prio_ ? prio_.next : normal_.next;
    if (first == &normal_) return nullptr;
    unlink(first);
    return static_cast<Message*>(first);
  }

  // Is m linked in this queue? Exact under the lock that guards this queue.
  bool contains(const Message& m) const noexcept {
    return static_cast<const MsgLink&>(m).queue.load(std::memory_order_acquire) == this;
  }

  // Removes m if it is linked in this queue. Returns whether it was.
  bool remove(Message& m) noexcept {
    if (!contains(m)) return false;
    unlink(&m);
    return true;
  }

  // The message at address m if it is linked here, found without reading *m (which may be
  // gone: a stale request names it by address); nullptr if it is not here. O(size()).
  Message* find(const void* m) noexcept {
    for (MsgLink* head : {&prio_, &normal_}) {
      for (MsgLink* l = head->next; l != head; l = l->next) {
        if (static_cast<const void*>(static_cast<Message*>(l)) == m)
          return static_cast<Message*>(l);
      }
    }
    return nullptr;
  }

  // Is m linked in some queue or taken list?
  static bool in_a_queue(const Message& m) noexcept {
    return static_cast<const MsgLink&>(m).queue.load(std::memory_order_relaxed) != nullptr;
  }

  // The context of the taken list m is in, or nullptr when it is in none.
  static Context* taken_context(const Message& m) noexcept {
    const void* q = static_cast<const MsgLink&>(m).queue.load(std::memory_order_relaxed);
    if (q == nullptr) return nullptr;
    const auto* queue = static_cast<const MsgQueue*>(q);
    return queue->taken_ ? queue->context_ : nullptr;
  }

  // Takes m out of the taken list it is in, if any (reply_msg, forward_msg). m must not sit in a
  // request or reply queue: such a message is not the replier's to answer.
  static void leave_taken(Message& m) noexcept {
    MsgLink* link = &m;
    const void* q = link->queue.load(std::memory_order_relaxed);
    if (q == nullptr) return;
    auto* queue = const_cast<MsgQueue*>(static_cast<const MsgQueue*>(q));
    MSGPORT_CHECK_RULE(queue->taken_,
                       "a message waiting in a port's queue is not replied or "
                       "forwarded: only the agent that took it answers it");
    queue->unlink(link);
  }

 private:
  static void init(MsgLink& head) noexcept { head.next = head.prev = &head; }

  void unlink(MsgLink* link) noexcept {
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->next = link->prev = nullptr;
    link->queue.store(nullptr, std::memory_order_release);
    --size_;
  }

  MsgLink prio_;
  MsgLink normal_;
  std::size_t size_ = 0;
  Context* context_;
  bool taken_;
};

}  // namespace msgport
