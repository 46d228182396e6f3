// runtime/core.cc — one core's loop.
//
// A loop turn: handle what other cores and threads sent (in order per sender), run the
// coroutines made ready on this core, fire due timers, reap io_uring completions, then publish
// what this core sent to others (one publish per receiving core per batch) and wake the ones
// that sleep. With nothing to do, the core sleeps in io_uring_enter until a timer is due or
// another core wakes it.
#include <absl/strings/str_cat.h>
#include <absl/time/clock.h>
#include <msgport/ports/ops.h>
#include <msgport/runtime/core.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/thread_port.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <stdexcept>
#include <string>

namespace msgport {

namespace {

// A kCall entry: run its function here.
inline void run_call(const CoreEntry& e) noexcept {
  auto* call = static_cast<CoreCall*>(e.ptr());
  call->fn(call);
}

// user_data tags the core keeps for itself; anything else is a Core::CqeHandler*.
constexpr std::uint64_t kWakeTag = 1;
constexpr std::uint64_t kEventfdTag = 2;

// Single-writer counter bump: a plain load and store, no read-modify-write.
inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);  // single writer
}

}  // namespace

std::string CoreCounters::to_string() const {
  return absl::StrCat(
      "begun_local=", begun_local, " begun_cross_core=", begun_cross_core, " queued=", queued,
      " resumed=", resumed, " sent_cross_core=", sent_cross_core, " received=", received,
      " overflowed=", overflowed, " held_back=", held_back, " wakeups_sent=", wakeups_sent,
      " wakeups=", wakeups, " loop_turns=", loop_turns, " sleeps=", sleeps,
      " timers_fired=", timers_fired);
}

std::ostream& operator<<(std::ostream& os, const CoreCounters& c) { return os << c.to_string(); }

bool CoreSnapshot::has(std::string_view name) const noexcept {
  for (const Feature& f : features) {
    if (f.name == name) return f.on;
  }
  return false;
}

std::uint64_t CoreSnapshot::device_counter(std::string_view name) const noexcept {
  for (const Counter& c : device_counters) {
    if (c.name == name) return c.value;
  }
  return 0;
}

std::string CoreSnapshot::to_string() const {
  std::string out = absl::StrCat("core ", core, " (cpu ", cpu, "): ", counters.to_string(),
                                 "\n  io_uring: ", ring, ";");
  for (const Feature& f : features) absl::StrAppend(&out, " ", f.name, f.on ? "=on" : "=off");
  if (!device.empty()) {
    absl::StrAppend(&out, "\n  ", device, ":");
    for (const Counter& c : device_counters) absl::StrAppend(&out, " ", c.name, "=", c.value);
  }
  for (const Thread& t : threads) {
    absl::StrAppend(&out, "\n  thread ", t.id, ": ", t.port.to_string(),
                    " now queued=", t.queued_now, " taken=", t.taken_now);
  }
  out += "\n";
  return out;
}

std::ostream& operator<<(std::ostream& os, const CoreSnapshot& s) { return os << s.to_string(); }

CoreSnapshot Core::snapshot() {
  if (current_ != this) {
    std::lock_guard lock(foreign_mu_);
    if (!sealed_) {
      throw std::logic_error(
          "msgport: Core::snapshot() off the core while it runs; use Runtime::snapshot(core), "
          "which takes it on the core");
    }
  }
  CoreSnapshot s;
  s.core = id_;
  s.cpu = cpu_;
  s.ring = ring_features_;
  s.features = {
      {"single_issuer", (setup_flags_ & IORING_SETUP_SINGLE_ISSUER) != 0},
      {"defer_taskrun", (setup_flags_ & IORING_SETUP_DEFER_TASKRUN) != 0},
      {"coop_taskrun", (setup_flags_ & IORING_SETUP_COOP_TASKRUN) != 0},
      {"registered_ring_fd", registered_fd_},
      {"nodrop", (kernel_features_ & IORING_FEAT_NODROP) != 0},
      {"ext_arg", (kernel_features_ & IORING_FEAT_EXT_ARG) != 0},
      {"cqe_skip", (kernel_features_ & IORING_FEAT_CQE_SKIP) != 0},
      {"fast_poll", (kernel_features_ & IORING_FEAT_FAST_POLL) != 0},
      {"msg_ring", msg_ring_},
  };
  s.counters = counters();
  {
    // The threads whose home is this core: their ports live here (read on this core, or after
    // it stopped). Under the runtime's list lock, so none is freed meanwhile.
    std::lock_guard lock(rt_.threads_mu_);
    for (const auto& t : rt_.threads_) {
      if (&t->core() != this) continue;
      s.threads.push_back({t->id, t->port().counters(), t->port().size(), t->port().taken()});
    }
  }
  if (device_ != nullptr) device_->report(s);
  return s;
}

Core::Core(Runtime& rt, int id, int cpu, std::size_t ring_capacity, WakeMode wake)
    : rt_(rt), id_(id), cpu_(cpu), wake_mode_(wake) {
  int n = static_cast<int>(rt.options_.cores);
  inbox_.resize(static_cast<std::size_t>(n));
  overflow_.resize(static_cast<std::size_t>(n));
  is_dirty_.assign(static_cast<std::size_t>(n), 0);
  for (int j = 0; j < n; ++j) {
    if (j != id)
      inbox_[static_cast<std::size_t>(j)] =
          std::make_unique<detail::SpscRing<CoreEntry>>(ring_capacity);
  }
  poll_ns_.store(absl::ToInt64Nanoseconds(rt.options_.poll_before_sleep),
                 std::memory_order_relaxed);
  event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (event_fd_ < 0) throw std::runtime_error(absl::StrCat("msgport: eventfd: ", strerror(errno)));
}

Core::~Core() {
  if (thread_.joinable()) thread_.join();
  if (event_fd_ >= 0) close(event_fd_);
}

// ---- the thread ------------------------------------------------------------------------------

void Core::start() {
  std::atomic<int> ready{0};
  std::string error;
  thread_ = std::thread([this, &ready, &error] {
    if (rt_.options_.pin && cpu_ >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu_, &set);
      pthread_setaffinity_np(pthread_self(), sizeof set, &set);  // best effort
    }
    // The ring is created on the core's own thread: with SINGLE_ISSUER it is this thread's.
    struct Try {
      unsigned flags;
      const char* name;
    };
    const Try tries[] = {
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "SINGLE_ISSUER+DEFER_TASKRUN"},
        {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, "SINGLE_ISSUER+COOP_TASKRUN"},
        {IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN"},
        {0, "plain"},
    };
    int rc = -1;
    for (const Try& t : tries) {
      io_uring_params p{};
      // A completion queue with room for many connections' completions at once; past it the
      // kernel keeps the overflow (IORING_FEAT_NODROP) until the core reaps.
      p.flags = t.flags | IORING_SETUP_CQSIZE;
      p.cq_entries = kCqEntries;
      rc = io_uring_queue_init_params(kSqEntries, &ring_, &p);
      if (rc == 0) {
        ring_features_ = t.name;
        setup_flags_ = t.flags;
        kernel_features_ = p.features;
        break;
      }
    }
    if (rc != 0) {
      error = absl::StrCat("msgport: io_uring_queue_init on core ", id_, ": ", strerror(-rc));
      if (rc == -EPERM || rc == -ENOSYS || rc == -EACCES) {
        absl::StrAppend(&error,
                        " (io_uring is not available to this process: the kernel disables it "
                        "(sysctl kernel.io_uring_disabled; set it to 0 as root) or a container's "
                        "seccomp profile blocks io_uring_setup (allow it, or run outside the "
                        "container); msgport's cores need io_uring to sleep, wake and do I/O)");
      }
      ready.store(-1, std::memory_order_release);
      ready.notify_one();
      return;
    }
    ring_fd_ = ring_.ring_fd;
    // io_uring_enter through a registered ring descriptor skips the kernel's file lookup (about
    // 20 ns per enter measured here); an older kernel refuses, and the plain descriptor serves.
    if (io_uring_register_ring_fd(&ring_) == 1) {
      ring_features_ += "+REGISTERED_FD";
      registered_fd_ = true;
    }
    if (io_uring_probe* probe = io_uring_get_probe_ring(&ring_)) {
      msg_ring_ = io_uring_opcode_supported(probe, IORING_OP_MSG_RING) != 0;
      io_uring_free_probe(probe);
    }
    current_ = this;
    ready.store(1, std::memory_order_release);
    ready.notify_one();
    run();
    // Every device message is replied before the ring goes (their waiters will not run again
    // on this core, but the messages are done and their buffers released by the kernel).
    if (device_ != nullptr) device_->drain();
    current_ = nullptr;
    io_uring_queue_exit(&ring_);
  });
  ready.wait(0, std::memory_order_acquire);
  if (ready.load(std::memory_order_acquire) < 0) {
    thread_.join();
    throw std::runtime_error(error);
  }
}

void Core::run() {
  Context::Bind bind(this);
  while (!stop_.load(std::memory_order_acquire)) {
    if (!turn()) idle();
  }
}

bool Core::turn() {
  bump(counters_.loop_turns);
  refill_budget();
  std::size_t work = 0;
  for (auto& ring : inbox_) {
    if (ring) work += ring->drain([this](const CoreEntry& e) { process(e); });
  }
  if (foreign_pending_.load(std::memory_order_acquire) != 0) {
    {
      std::lock_guard lock(foreign_mu_);
      foreign_batch_.swap(foreign_);  // both buffers keep their capacity
      foreign_pending_.store(0, std::memory_order_relaxed);
    }
    for (const CoreEntry& e : foreign_batch_) process(e);
    work += foreign_batch_.size();
    foreign_batch_.clear();
  }
  bump(counters_.received, work);
  // Run what is ready now; what these make ready runs next turn, after the inboxes again.
  for (std::size_t n = ready_.size(); n > 0; --n) {
    if (backlog_ != 0) {  // backpressure: the producers wait until the rings have room
      bump(counters_.held_back);
      break;
    }
    std::coroutine_handle<> h = ready_.front();
    ready_.pop_front();
    bump(counters_.resumed);
    refill_budget();  // each chain of direct resumes started here is bounded (ports/context.h)
    h.resume();
    flush_out();
    ++work;
  }
  work += fire_timers();
  work += reap_cqes();
  submit();  // one submit per turn for everything the turn prepared
  flush_out();
  return work > 0;
}

int Core::submit() noexcept {
  if (device_ != nullptr && device_->needs_flush) device_->flush();
  if (io_uring_sq_ready(&ring_) == 0) return 0;
  return io_uring_submit(&ring_);
}

void Core::process(const CoreEntry& e) {
  switch (e.kind()) {
    case CoreEntry::kResume:
      bump(counters_.resumed);
      resume_here(std::coroutine_handle<>::from_address(e.ptr()));
      break;
    case CoreEntry::kResumeWaiter:
      bump(counters_.resumed);
      resume_here(static_cast<CoWaiter*>(e.ptr())->handle());
      break;
    case CoreEntry::kSend: {
      // The message was last written on the sender's core and is about to be written here:
      // fetch its line for writing at once rather than shared and then again for ownership.
      __builtin_prefetch(e.ptr(), 1);
      auto& m = *static_cast<Message*>(e.ptr());
      ThreadPort* port = ports_.find(e.port);
      // A port whose thread ended meanwhile refuses, like a closed one.
      int r = port != nullptr ? port->begin_here(m, /*cross_core=*/true) : -ECANCELED;
      if (r != kAsync) reply_msg(m, r);
      break;
    }
    case CoreEntry::kReply: {
      auto& m = *static_cast<Message*>(e.ptr());
      if (ThreadPort* port = ports_.find(e.port)) {
        port->BasicQueuePort<OwnedLock>::put_reply(m);
      } else {
        detail::complete(m);  // its reply port is gone: the reply only marks it done
      }
      break;
    }
    case CoreEntry::kCall:
      run_call(e);
      break;
    case CoreEntry::kAbort:
      // A port that is gone took its messages with it (replied); a stale send is left alone.
      if (ThreadPort* port = ports_.find(e.port)) port->abort_queued(e.ptr(), e.send);
      break;
    case CoreEntry::kFinishReply:
      detail::finish_posted_reply(*static_cast<Message*>(e.ptr()), /*context_stopped=*/false);
      break;
    case CoreEntry::kCollect:
      // A port that is gone let its queued replies go already.
      if (ThreadPort* port = ports_.find(e.port)) {
        port->BasicQueuePort<OwnedLock>::remove_queued(*static_cast<Message*>(e.ptr()), true);
      }
      reinterpret_cast<Waiter*>(static_cast<std::uintptr_t>(e.send))->wake(Wake::kDirect);
      break;
  }
  flush_out();
}

// ---- delivery --------------------------------------------------------------------------------

void Core::schedule(std::coroutine_handle<> h) noexcept {
  deliver(CoreEntry(h.address(), CoreEntry::kResume));
}

void Core::post(CoWaiter& w) noexcept { deliver(CoreEntry(&w, CoreEntry::kResumeWaiter)); }

void Core::post_reply(Message& m) noexcept {
  if (current_ == this && Context::current() != this) {
    // On this core's thread after its loop ended (its device port draining at stop): the loop
    // will not run again, so the reply is finished here, with no waiter resumed.
    detail::finish_posted_reply(m, /*context_stopped=*/true);
    return;
  }
  deliver(CoreEntry(&m, CoreEntry::kFinishReply));
}

void Core::deliver(const CoreEntry& e) noexcept {
  Core* from = current_;
  if (from == this) {
    if (e.kind() == CoreEntry::kResume) {
      ready_.push_back(std::coroutine_handle<>::from_address(e.ptr()));
    } else if (e.kind() == CoreEntry::kResumeWaiter) {
      ready_.push_back(static_cast<CoWaiter*>(e.ptr())->handle());
    } else {
      process(e);
    }
    return;
  }
  if (from != nullptr && &from->rt_ == &rt_) {
    from->push_out(id_, e);
    return;
  }
  {
    std::unique_lock lock(foreign_mu_);
    if (sealed_) {
      lock.unlock();
      refuse(e);
      return;
    }
    foreign_.push_back(e);
  }
  // seq_cst: the store-load pair with idle() (sleeping_ then the pending count).
  foreign_pending_.fetch_add(1, std::memory_order_seq_cst);
  if (sleeping_.load(std::memory_order_seq_cst) &&
      sleeping_.exchange(false, std::memory_order_seq_cst)) {
    wake_from(nullptr);
  }
}

void Core::refuse(const CoreEntry& e) noexcept {
  switch (e.kind()) {
    case CoreEntry::kSend:
      reply_msg(*static_cast<Message*>(e.ptr()), -ECANCELED);
      break;
    case CoreEntry::kReply:
      detail::complete(*static_cast<Message*>(e.ptr()));
      break;
    case CoreEntry::kFinishReply:
      // Nothing runs on the core any more, so nothing there can race with the reply.
      detail::finish_posted_reply(*static_cast<Message*>(e.ptr()), /*context_stopped=*/true);
      break;
    case CoreEntry::kCall:
      run_call(e);
      break;
    case CoreEntry::kCollect:
      // The core no longer runs: nothing takes from its queues; the waiter goes on.
      reinterpret_cast<Waiter*>(static_cast<std::uintptr_t>(e.send))->wake(Wake::kDirect);
      break;
    case CoreEntry::kAbort:
    case CoreEntry::kResume:
    case CoreEntry::kResumeWaiter:
      break;
  }
}

void Core::seal() noexcept {
  std::vector<CoreEntry> left;
  {
    std::lock_guard lock(foreign_mu_);
    sealed_ = true;
    finished_.store(true, std::memory_order_release);
    left.swap(foreign_);
  }
  for (auto& ring : inbox_) {
    if (ring) ring->drain([&left](const CoreEntry& e) { left.push_back(e); });
  }
  // What this core had sent that still waited for ring space never reached its receiver.
  for (std::deque<CoreEntry>& spill : overflow_) {
    left.insert(left.end(), spill.begin(), spill.end());
    spill.clear();
  }
  backlog_ = 0;
  set_holding(false);
  // The timers will never fire: each is disarmed now, so that what holds one (a frame destroyed
  // later, maybe after this core is gone: its JoinHandle outlived the runtime) need not come
  // back here to disarm it.
  for (CoreTimer* t : timers_) t->heap_index = static_cast<std::size_t>(-1);
  timers_.clear();
  for (const CoreEntry& e : left) refuse(e);
}

void Core::push_out(int target, const CoreEntry& e) noexcept {
  auto t = static_cast<std::size_t>(target);
  bump(counters_.sent_cross_core);
  std::deque<CoreEntry>& spill = overflow_[t];
  auto& ring = *outbox_[t];
  if (!spill.empty() || !ring.try_push(e)) {
    spill.push_back(e);                      // in order behind what already waits; never dropped
    if (backlog_++ == 0) set_holding(true);  // direct wake-ups on this core now queue too
    bump(counters_.overflowed);
  }
  if (!is_dirty_[t]) {
    is_dirty_[t] = 1;
    dirty_.push_back(target);
  }
}

void Core::flush_dirty() noexcept {
  std::size_t keep = 0;
  for (int target : dirty_) {
    auto t = static_cast<std::size_t>(target);
    Core& to = *rt_.cores_[t];
    auto& ring = *outbox_[t];
    std::deque<CoreEntry>& spill = overflow_[t];
    while (!spill.empty() && ring.try_push(spill.front())) {
      spill.pop_front();
      if (--backlog_ == 0) set_holding(false);
    }
    // seq_cst publish, then the receiver's sleeping flag: the sender's half of the handshake.
    if (ring.publish() && to.sleeping_.load(std::memory_order_seq_cst) &&
        to.sleeping_.exchange(false, std::memory_order_seq_cst)) {
      to.wake_from(this);
    }
    if (spill.empty()) {
      is_dirty_[t] = 0;
    } else {
      dirty_[keep++] = target;  // still waiting for ring space: try again next turn
    }
  }
  dirty_.resize(keep);
}

void Core::wake_from(Core* waker) noexcept {
  if (waker != nullptr) bump(waker->counters_.wakeups_sent);
  if (waker != nullptr && wake_mode_ == WakeMode::kMsgRing) {
    io_uring_sqe* sqe = io_uring_get_sqe(&waker->ring_);
    if (sqe != nullptr) {
      io_uring_prep_msg_ring(sqe, ring_fd_, 0, kWakeTag, 0);
      sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
      io_uring_sqe_set_data64(sqe, 0);
      if (io_uring_submit(&waker->ring_) >= 1) return;
    }
  }
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof one);
}

// ---- sleeping --------------------------------------------------------------------------------

bool Core::has_visible_work(bool about_to_sleep) noexcept {
  // Ready coroutines held back by a backlog are not work: the core waits for ring space, and
  // ring space for its backlog is.
  if ((!ready_.empty() && backlog_ == 0) || stop_.load(std::memory_order_acquire)) return true;
  for (int target : dirty_) {
    auto t = static_cast<std::size_t>(target);
    if (!overflow_[t].empty() && outbox_[t]->has_room()) return true;
  }
  for (const auto& ring : inbox_) {
    if (ring && (about_to_sleep ? !ring->empty() : ring->ready())) return true;
  }
  if (foreign_pending_.load(std::memory_order_seq_cst) != 0) return true;
  return io_uring_cq_ready(&ring_) != 0;
}

void Core::arm_eventfd_read() noexcept {
  if (eventfd_armed_) return;
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) return;
  io_uring_prep_read(sqe, event_fd_, &event_buf_, sizeof event_buf_, 0);
  io_uring_sqe_set_data64(sqe, kEventfdTag);
  eventfd_armed_ = true;
}

void Core::idle() {
  // A short, bounded poll first: a message arriving now costs no wake-up on either side. Device
  // completions too: a DEFER_TASKRUN ring posts them only when asked, so the poll asks now and
  // then. (Waiting in the kernel at once instead saved an echo server 7% of its CPU but doubled a
  // TCP ping-pong's round trip: bench/README.md. RuntimeOptions::poll_before_sleep = 0 chooses
  // that.)
  if (std::int64_t poll = poll_ns_.load(std::memory_order_relaxed); poll > 0) {
    // The clock is read every 64 rounds, the first time after 64 (a reply often lands sooner).
    absl::Time until = absl::InfinitePast();
    for (unsigned i = 1;; ++i) {
      if (has_visible_work(false)) return;
      if (i % 64 == 0) {
        if (io_in_flight_ != 0 && (ring_.flags & IORING_SETUP_DEFER_TASKRUN)) {
          io_uring_get_events(&ring_);
        }
        absl::Time now = absl::Now();
        if (i == 64) {
          until = now + absl::Nanoseconds(poll);
        } else if (now >= until) {
          break;
        }
      }
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  }
  arm_eventfd_read();
  sleeping_.store(true, std::memory_order_seq_cst);
  if (has_visible_work(true)) {
    sleeping_.store(false, std::memory_order_relaxed);
    return;
  }
  bool spill = !dirty_.empty();
  __kernel_timespec ts{};
  __kernel_timespec* timeout = nullptr;
  if (!timers_.empty() || spill) {
    absl::Duration d = spill ? absl::Microseconds(20) : absl::InfiniteDuration();
    if (!timers_.empty()) d = std::min(d, timers_.front()->when - absl::Now());
    if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
    ts.tv_sec = absl::ToInt64Seconds(d);
    ts.tv_nsec = absl::ToInt64Nanoseconds(d - absl::Seconds(ts.tv_sec));
    timeout = &ts;
  }
  bump(counters_.sleeps);
  io_uring_cqe* cqe = nullptr;
  io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, timeout, nullptr);
  sleeping_.store(false, std::memory_order_relaxed);
}

std::size_t Core::reap_cqes() noexcept {
  if (io_uring_cq_ready(&ring_) == 0) {
    // DEFER_TASKRUN rings post completions only when asked to: a syscall, so only while device
    // operations are in flight (the core's own wake-ups complete while it waits in the kernel).
    if (io_in_flight_ == 0 || !(ring_.flags & IORING_SETUP_DEFER_TASKRUN)) return 0;
    io_uring_get_events(&ring_);
    if (io_uring_cq_ready(&ring_) == 0) return 0;
  }
  std::size_t n = 0;
  unsigned head;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    ++n;
    std::uint64_t tag = io_uring_cqe_get_data64(cqe);
    if (tag == kWakeTag) {
      bump(counters_.wakeups);
    } else if (tag == kEventfdTag) {
      eventfd_armed_ = false;
      bump(counters_.wakeups);
    } else if (tag != 0) {
      reinterpret_cast<CqeHandler*>(tag)->on_cqe(*cqe);
    }
  }
  io_uring_cq_advance(&ring_, static_cast<unsigned>(n));
  return n;
}

// ---- timers ----------------------------------------------------------------------------------

void Core::arm(CoreTimer& t) noexcept {
  t.seq = ++timer_seq_;
  t.heap_index = timers_.size();
  timers_.push_back(&t);
  heap_up(t.heap_index);
}

void Core::disarm(CoreTimer& t) noexcept {
  std::size_t i = t.heap_index;
  if (i == static_cast<std::size_t>(-1)) return;
  std::size_t last = timers_.size() - 1;
  if (i != last) {
    timers_[i] = timers_[last];
    timers_[i]->heap_index = i;
  }
  timers_.pop_back();
  t.heap_index = static_cast<std::size_t>(-1);
  if (i < timers_.size()) {
    heap_down(i);
    heap_up(i);
  }
}

namespace {
bool earlier(const CoreTimer* a, const CoreTimer* b) {
  return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}
}  // namespace

void Core::heap_up(std::size_t i) noexcept {
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (!earlier(timers_[i], timers_[parent])) break;
    std::swap(timers_[i], timers_[parent]);
    timers_[i]->heap_index = i;
    timers_[parent]->heap_index = parent;
    i = parent;
  }
}

void Core::heap_down(std::size_t i) noexcept {
  for (;;) {
    std::size_t l = 2 * i + 1, r = l + 1, best = i;
    if (l < timers_.size() && earlier(timers_[l], timers_[best])) best = l;
    if (r < timers_.size() && earlier(timers_[r], timers_[best])) best = r;
    if (best == i) return;
    std::swap(timers_[i], timers_[best]);
    timers_[i]->heap_index = i;
    timers_[best]->heap_index = best;
    i = best;
  }
}

std::size_t Core::fire_timers() {
  if (timers_.empty()) return 0;
  absl::Time now = absl::Now();
  std::size_t n = 0;
  while (!timers_.empty() && timers_.front()->when <= now) {
    CoreTimer* t = timers_.front();
    disarm(*t);
    bump(counters_.timers_fired);
    t->fire(t);
    flush_out();
    ++n;
  }
  return n;
}

CoreCounters Core::counters() const {
  CoreCounters c;
  c.begun_local = counters_.begun_local.load(std::memory_order_relaxed);
  c.begun_cross_core = counters_.begun_cross_core.load(std::memory_order_relaxed);
  c.queued = counters_.queued.load(std::memory_order_relaxed);
  c.resumed = counters_.resumed.load(std::memory_order_relaxed);
  c.sent_cross_core = counters_.sent_cross_core.load(std::memory_order_relaxed);
  c.received = counters_.received.load(std::memory_order_relaxed);
  c.overflowed = counters_.overflowed.load(std::memory_order_relaxed);
  c.held_back = counters_.held_back.load(std::memory_order_relaxed);
  c.wakeups_sent = counters_.wakeups_sent.load(std::memory_order_relaxed);
  c.wakeups = counters_.wakeups.load(std::memory_order_relaxed);
  c.loop_turns = counters_.loop_turns.load(std::memory_order_relaxed);
  c.sleeps = counters_.sleeps.load(std::memory_order_relaxed);
  c.timers_fired = counters_.timers_fired.load(std::memory_order_relaxed);
  return c;
}

}  // namespace msgport
