// "The library never allocates on any message path": global operator new is counted while
// messages go through do_msg, send_msg, reply, forward, abort, drop, wait_msg and wait_port.
// Coroutine frames are created before counting starts: a frame is not a message path.
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <new>

#include "tests/test_support.h"

namespace {
std::atomic<long> g_news{0};
}

void* operator new(std::size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  std::size_t align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace msgport {
namespace {

using testing::ValueMsg;

class Doubler final : public Port {
 public:
  int begin_msg(Message& m) override { return static_cast<ValueMsg&>(m).value * 2; }
};

struct Counters {
  int served = 0;
};

Task<void> owner(QueuePort& port, Counters& c) {
  while (Message* m = co_await wait_port(port)) {
    ++c.served;
    reply_msg(*m, static_cast<ValueMsg*>(m)->value);
  }
}

Task<int> sender(Doubler& sync_port, QueuePort& queue_port, ReplyPort& replies, int rounds) {
  int sum = 0;
  ValueMsg m;
  for (int i = 0; i < rounds; ++i) {
    m.value = i;
    sum += co_await do_msg(sync_port, m);   // acts at once
    sum += co_await do_msg(queue_port, m);  // queued, served, replied, resumed
    m.set_reply_port(&replies);
    send_msg(queue_port, m);  // send_msg + wait_msg
    sum += co_await wait_msg(m);
    send_msg(sync_port, m);                       // send_msg on a synchronous agent
    Message* back = co_await wait_port(replies);  // collected from the reply port
    sum += back->result();
    m.set_reply_port(nullptr);
  }
  co_return sum;
}

TEST(NoAllocation, MessagePathsNeverCallOperatorNew) {
  Doubler sync_port;
  QueuePort queue_port;
  ReplyPort replies;
  Counters counters;
  Task<void> serving = owner(queue_port, counters);
  Task<int> sending = sender(sync_port, queue_port, replies, 100);

  long before = g_news.load();
  serving.start();
  sending.start();
  ASSERT_TRUE(sending.done());

  // forward, abort and drop, on messages in this frame.
  QueuePort parked;  // no owner: messages stay queued
  ValueMsg a, b, c;
  a.set_abortable(true);
  send_msg(parked, a);
  abort_msg(a);  // cancelled while queued: replied -ECANCELED
  b.set_dropable(true);
  send_msg(parked, b);
  bool dropped = drop_msg(b);
  send_msg(parked, c);
  forward_msg(queue_port, *parked.try_get());  // the owner serves and replies it
  long after = g_news.load();

  EXPECT_EQ(after - before, 0) << "operator new was called on a message path";
  // The work really happened.
  EXPECT_EQ(a.result(), -ECANCELED);
  EXPECT_TRUE(dropped);
  EXPECT_TRUE(check_msg(c));
  EXPECT_EQ(counters.served, 201);
  int expected = 0;
  for (int i = 0; i < 100; ++i) expected += 2 * i + i + i + 2 * i;
  EXPECT_EQ(sending.result(), expected);
  queue_port.close();
  EXPECT_TRUE(serving.done());
}

}  // namespace
}  // namespace msgport
