// ports/msg_queue.h — the intrusive message queue every queueing port is built on.
//
// FIFO, except that priority messages (kMsgPriority) go ahead of all non-priority ones, FIFO
// among themselves. Push, pop and remove are O(1) and allocate nothing: the links live in the
// message header. Not thread-safe: the owning port guards it.
#pragma once

#include <cstddef>

#include "ports/check.h"
#include "ports/message.h"

namespace msgport {

class MsgQueue {
 public:
  MsgQueue() noexcept {
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
};

}  // namespace msgport
