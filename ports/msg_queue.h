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
  MsgQueue() noexcept { init(prio_); init(normal_); }
  MsgQueue(const MsgQueue&) = delete;
  MsgQueue& operator=(const MsgQueue&) = delete;

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }

  void push(Message& m) noexcept {
    MsgLink* link = &m;
    MSGPORT_CHECK_RULE(link->next == nullptr, "a message sits in one queue at a time");
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

  // Removes m if it is linked (in this queue: the caller knows). Returns whether it was.
  bool remove(Message& m) noexcept {
    MsgLink* link = &m;
    if (link->next == nullptr) return false;
    unlink(link);
    return true;
  }

  static bool linked(const Message& m) noexcept {
    return static_cast<const MsgLink&>(m).next != nullptr;
  }

 private:
  static void init(MsgLink& head) noexcept { head.next = head.prev = &head; }

  void unlink(MsgLink* link) noexcept {
    link->prev->next = link->next;
    link->next->prev = link->prev;
    link->next = link->prev = nullptr;
    --size_;
  }

  MsgLink prio_;
  MsgLink normal_;
  std::size_t size_ = 0;
};

}  // namespace msgport
