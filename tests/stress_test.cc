// The exactly-once stress test: a randomized mix of every path a message can take across cores
// and plain threads (do_msg, send + abort + wait, deadlines, forwarding between cores, a client
// migrating while its message is in flight, a message sent again right after its reply, servers
// that end while messages are on their way to them), each message freed right after its reply.
//
// Every send is counted when its sender sees the reply: the counts must add up to the sends, each
// result must be one a reply may carry, and (in builds with the contract checks on, as the test
// suite and tools/soak.sh are) a second reply of any message stops the process. AddressSanitizer
// catches anything touched after its reply. MSGPORT_STRESS_MESSAGES sets the number of messages
// (default 10^5; tools/soak.sh runs 10^7 and prints the counts).
#include <gtest/gtest.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/migrate.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/timer.h>
#include <msgport/runtime/yield.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "tests/test_support.h"
#include "tests/watchdog.h"

namespace msgport {
namespace {

struct StressMsg : Message {
  int value = 0;
  int hops = 0;
};

struct Tally {
  std::atomic<long> sent{0}, replied{0}, normal{0}, cancelled{0}, timed_out{0}, bad{0};
  // may_cancel: the send was aborted, had a deadline, or went to a server that ends; any other
  // send cancelled was cancelled by mistake (a stale abort, say) and counts as bad.
  void count(int r, int value, bool may_cancel) {
    replied.fetch_add(1, std::memory_order_relaxed);
    (r == value + 1                  ? normal
     : r == -ECANCELED && may_cancel ? cancelled
     : r == -ETIMEDOUT && may_cancel ? timed_out
                                     : bad)
        .fetch_add(1, std::memory_order_relaxed);
  }
};

// The servers' ports: those that serve for the whole run first, then those that end early.
struct Ports {
  std::vector<ThreadPort*> all;
  std::size_t lifelong = 0;  // all[0, lifelong) never end
  bool ends(const ThreadPort& p) const {
    for (std::size_t i = 0; i < lifelong; ++i) {
      if (all[i] == &p) return false;
    }
    return true;
  }
};

// A server: answers each request at once, after a yield (holding it meanwhile), or forwards it to
// a server that serves for the whole run (at most twice). A server with a life ends after that many
// requests: its port closes, and what is queued or still on its way to it is refused.
Task<long> server(LwThread& self, const Ports& ports, long life, unsigned seed) {
  std::mt19937 rng(seed);
  long served = 0;
  for (;;) {
    Message* m = co_await wait_port(self.port());
    if (m == nullptr) break;
    auto* v = static_cast<StressMsg*>(m);
    switch (rng() % 4) {
      case 0:
      case 1:
        reply_msg(*m, v->value + 1);
        break;
      case 2:
        if (v->hops < 2) {
          ++v->hops;
          forward_msg(*ports.all[rng() % ports.lifelong], *m);
        } else {
          reply_msg(*m, v->value + 1);
        }
        break;
      default:
        co_await yield_now();
        reply_msg(*m, v->value + 1);
        break;
    }
    if (life > 0 && ++served >= life) break;
  }
  co_return served;
}

// One send of a fresh message by a lightweight thread, by a random route; freed after its reply.
// A cancel is a legitimate answer only where the route asked for one (an abort, a deadline) or
// the server ends.
Task<void> one_send(Runtime& rt, ThreadPort& to, bool to_ending, std::mt19937& rng, Tally& tally) {
  auto* m = new StressMsg;
  m->value = static_cast<int>(rng() % 1000);
  tally.sent.fetch_add(1, std::memory_order_relaxed);
  int r = 0;
  bool may_cancel = to_ending;
  switch (rng() % 5) {
    case 0:
      r = co_await do_msg(to, *m);
      break;
    case 1:
      m->set_abortable(true);
      send_msg(to, *m);
      if (rng() % 2) co_await yield_now();
      abort_msg(*m);
      may_cancel = true;
      r = co_await wait_msg(*m);
      break;
    case 2:
      may_cancel = true;
      r = co_await do_msg_until(to, *m, absl::Now() + absl::Microseconds(rng() % 40));
      break;
    case 3:
      send_msg(to, *m);
      co_await migrate_to(rt.core(static_cast<int>(rng() % rt.size())));
      r = co_await wait_msg(*m);
      break;
    default:
      // Aborted, then sent again at once: the first send's abort must not touch the second.
      m->set_abortable(true);
      send_msg(to, *m);
      abort_msg(*m);
      r = co_await wait_msg(*m);
      tally.count(r, m->value, true);
      tally.sent.fetch_add(1, std::memory_order_relaxed);
      m->hops = 0;
      m->set_abortable(false);
      r = co_await do_msg(to, *m);
      break;
  }
  tally.count(r, m->value, may_cancel);
  delete m;  // the reply came: nothing may touch it any more
}

Task<void> client(Runtime& rt, const Ports& ports, long n, unsigned seed, Tally& tally) {
  std::mt19937 rng(seed);
  for (long i = 0; i < n; ++i) {
    ThreadPort& to = *ports.all[rng() % ports.all.size()];
    co_await one_send(rt, to, ports.ends(to), rng, tally);
  }
}

void plain_client(const Ports& ports, long n, unsigned seed, Tally& tally) {
  std::mt19937 rng(seed);
  for (long i = 0; i < n; ++i) {
    auto* m = new StressMsg;
    m->value = static_cast<int>(rng() % 1000);
    tally.sent.fetch_add(1, std::memory_order_relaxed);
    ThreadPort& to = *ports.all[rng() % ports.all.size()];
    bool may_cancel = ports.ends(to);
    int r;
    if (rng() % 2) {
      r = do_msg_blocking(to, *m);
    } else {
      m->set_abortable(true);
      send_msg(to, *m);
      abort_msg(*m);
      may_cancel = true;
      r = wait_msg_blocking(*m);
    }
    tally.count(r, m->value, may_cancel);
    delete m;
  }
}

long messages() {
  const char* env = std::getenv("MSGPORT_STRESS_MESSAGES");
  long n = env != nullptr ? std::atol(env) : 0;
  return n > 0 ? n : testing::stress(100'000, 20'000);
}

TEST(Stress, EverySendIsRepliedExactlyOnceWhateverRouteItTakes) {
  const long total = messages();
  testing::Watchdog wd("the stress mix to finish", std::chrono::seconds(120 + total / 20'000));
  Runtime rt;
  const int cores = rt.size();
  // Per core: two servers for life, one that ends early (its port then refuses).
  Ports ports;
  std::vector<JoinHandle<long>> servers;
  for (int k = 0; k < 3; ++k) {
    for (int c = 0; c < cores; ++c) {
      long life = k == 2 ? total / 50 + 1 : 0;
      servers.push_back(rt.spawn(c, [&ports, life, seed = unsigned(c * 10 + k)](LwThread& self) {
        return server(self, ports, life, seed);
      }));
    }
  }
  for (auto& s : servers) ports.all.push_back(&s.port());
  ports.lifelong = static_cast<std::size_t>(2 * cores);
  Tally tally;
  const int clients_per_core = 2;
  const long plain_share = total / 10;
  const long per_client = (total - plain_share) / (cores * clients_per_core);
  std::vector<JoinHandle<void>> clients;
  for (int c = 0; c < cores; ++c) {
    for (int k = 0; k < clients_per_core; ++k) {
      clients.push_back(rt.spawn(
          c, client(rt, ports, per_client, static_cast<unsigned>(1000 + c * 10 + k), tally)));
    }
  }
  std::thread plain(plain_client, std::cref(ports), plain_share, 77u, std::ref(tally));
  for (auto& c : clients) c.join();
  plain.join();
  rt.stop(StopMode::kDrain);
  const long sent = tally.sent.load();
  std::printf(
      "stress: %ld sends: %ld replied (%ld with the server's result, %ld cancelled, %ld "
      "timed out, %ld bad)\n",
      sent, tally.replied.load(), tally.normal.load(), tally.cancelled.load(),
      tally.timed_out.load(), tally.bad.load());
  EXPECT_EQ(tally.replied.load(), sent) << "every send replied, once";
  EXPECT_EQ(tally.bad.load(), 0) << "every result is one a reply may carry";
  EXPECT_GT(tally.normal.load(), sent / 4);
  EXPECT_GT(tally.cancelled.load() + tally.timed_out.load(), 0);
}

}  // namespace
}  // namespace msgport
