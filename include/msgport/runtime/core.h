// msgport/runtime/core.h — a core: one OS thread pinned to one CPU, and its scheduler.
//
// A Core is the Context (ports/context.h) of every coroutine that runs on it. It has
//   * a run queue of ready coroutines (schedule() from this core),
//   * an inbox from every other core: one bounded lock-free ring per (sender, receiver) pair,
//     written by the sender core and published once per batch (runtime/spsc_ring.h),
//   * an inbox for threads that are not cores (main, tests), guarded by a mutex,
//   * timers, and one io_uring, which is also how the core sleeps when it has nothing to do and
//     how another core wakes it (IORING_OP_MSG_RING from the waker's ring, or an eventfd the
//     ring is reading; see WakeMode).
//
// Cross-core traffic is a CoreEntry: resume a coroutine, or send / reply / abort a message at a
// port this core owns. Entries from one core to another are handled in the order sent.
//
// A full ring is backpressure, never loss. An entry that finds the ring to its core full waits in
// the sending core's overflow queue, in order behind any others, and moves to the ring as the
// receiver drains it. While any entry waits (backlog() > 0) the sending core holds back its
// producers: no coroutine resumes on it until the backlog is gone. Not from the run queue, not
// one another core woke, not a sleeper whose timer fired, and not one a reply on this core would
// resume directly (Context::holding(): the waiter is queued instead). The core keeps draining
// its own inboxes, firing timers and reaping completions, so the receivers it waits for make
// progress too, and two cores that fill each other's rings never wait on each other. The backlog
// is therefore bounded by what the running coroutine sends before it suspends, plus what the
// core's own loop sends meanwhile (replies and aborts, for the entries it receives and the
// deadlines that expire), and the counters show when it happened (overflowed, held_back).
//
// Idle cores sleep; a core that publishes to a sleeping core wakes it. The handshake is the
// classic store-load pair: the sleeper stores `sleeping` then checks its inboxes, the sender
// publishes then checks `sleeping`, all seq_cst, so one of them always sees the other.
//
// Thread-safety: schedule(), post() and deliver() may be called from any thread; everything else
// runs on the core's own thread.
#pragma once

#include <absl/time/time.h>
#include <liburing.h>
#include <msgport/ports/context.h>
#include <msgport/ports/message.h>
#include <msgport/ports/port.h>
#include <msgport/runtime/chrono.h>
#include <msgport/runtime/port_table.h>
#include <msgport/runtime/spsc_ring.h>
#include <msgport/runtime/thread_port.h>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace msgport {

class Runtime;

// A function to run on a core (CoreEntry::kCall); the caller keeps it alive until it has run.
struct CoreCall {
  void (*fn)(CoreCall*) noexcept = nullptr;
};

// What one core hands another. An entry naming a thread port names it by handle
// (runtime/port_table.h): a port that is gone by the time the entry is handled is never touched.
// An abort names one send of its message (Message::send()), by the message's address, which is
// compared but never read unless that message is found queued at the port: the sender may have
// had its reply, and reused or freed the message, while the abort was on its way.
struct CoreEntry {
  enum Kind : std::uint8_t {
    kResume,        // ptr: a coroutine address
    kResumeWaiter,  // ptr: a CoWaiter posted to this core
    kSend,          // ptr: a Message for the thread port `port`: begin it there
    kReply,         // ptr: a Message whose reply port is the thread port `port`
    kAbort,         // ptr: the address of a Message, send `send`, held by the thread port `port`
    kCall,          // ptr: a CoreCall to run on this core
    kFinishReply,   // ptr: a Message whose reply is finished here (Context::post_reply)
    kCollect,       // ptr: a Message replied to the thread port `port`; `send`: a Waiter to
                    // wake once it is off that port's queue (wait_msg from another core)
  };
  CoreEntry() = default;
  // ptr is 8-byte aligned (messages, waiters, frames, calls all are): the kind rides in its low
  // bits, so that an entry is three words.
  CoreEntry(void* ptr, Kind kind, std::uint64_t port_handle = 0,
            std::uint64_t send_number = 0) noexcept
      : word_(reinterpret_cast<std::uintptr_t>(ptr) | kind), port(port_handle), send(send_number) {}
  void* ptr() const noexcept { return reinterpret_cast<void*>(word_ & ~std::uintptr_t{7}); }
  Kind kind() const noexcept { return static_cast<Kind>(word_ & 7); }

 private:
  std::uintptr_t word_ = 0;

 public:
  std::uint64_t port = 0;  // a thread port's handle (kSend, kReply, kAbort)
  std::uint64_t send = 0;  // kAbort: which send of the message (Message::send())
};

// Counters of one core. Snapshot with Core::counters(); printable with to_string().
struct CoreCounters {
  // Messages begun at the thread ports this core owns (the sum of their ThreadPort::Counters):
  std::uint64_t begun_local = 0;       // sent from this core: the agent ran inline, in the sender
  std::uint64_t begun_cross_core = 0;  // sent from other cores (or threads), carried over here
  std::uint64_t queued = 0;            // of those, waited in a port's queue (its thread busy)
  // The scheduler:
  std::uint64_t resumed = 0;          // coroutines resumed by the scheduler (run queue, inbox)
  std::uint64_t sent_cross_core = 0;  // entries this core sent to other cores
  std::uint64_t received = 0;         // entries this core received from other cores / threads
  std::uint64_t overflowed = 0;       // entries that waited in an overflow queue (ring full)
  std::uint64_t held_back = 0;        // turns the run queue waited for ring space (backpressure)
  std::uint64_t wakeups_sent = 0;     // sleeping cores this core woke
  std::uint64_t wakeups = 0;          // times this core was woken from sleep
  std::uint64_t loop_turns = 0;
  std::uint64_t sleeps = 0;
  std::uint64_t timers_fired = 0;

  std::string to_string() const;
};

std::ostream& operator<<(std::ostream& os, const CoreCounters& c);

// All of one core's counters at one moment, and the io_uring features it runs with
// (Core::snapshot(), Runtime::snapshot(core)). Taken on the core itself, so it is consistent:
// nothing on that core ran while it was taken.
struct CoreSnapshot {
  int core = -1;
  int cpu = -1;
  std::string ring;  // how its io_uring was set up, as Core::ring_features() says

  // An io_uring feature, on or off. The core reports its ring's setup flags (single_issuer,
  // defer_taskrun, coop_taskrun, registered_ring_fd), the kernel's feature bits it relies on
  // (nodrop, ext_arg, cqe_skip, fast_poll) and msg_ring; the device port, once it exists, the
  // operations it probed (io/device_port.h: send_zc, accept_multishot, recv_multishot, buf_ring,
  // link_timeout, async_cancel, ...).
  struct Feature {
    std::string name;
    bool on = false;
  };
  std::vector<Feature> features;

  CoreCounters counters;  // the core's own

  // The thread ports living on this core: one per lightweight thread whose home it is and that
  // has not ended.
  struct Thread {
    int id = 0;                  // the thread's id (as in stop's reports)
    ThreadPort::Counters port;   // its port's counters
    std::size_t queued_now = 0;  // requests waiting in its queue now
    std::size_t taken_now = 0;   // requests it has taken and not answered now
  };
  std::vector<Thread> threads;

  // The core's device port (io/device_port.h) once it has been created on that core (the first
  // io::device_port() there): its name and counters, in order. Empty before.
  std::string device;
  struct Counter {
    std::string name;
    std::uint64_t value = 0;
  };
  std::vector<Counter> device_counters;

  // Is feature `name` listed and on?
  bool has(std::string_view name) const noexcept;
  // A device counter by name; 0 when there is none.
  std::uint64_t device_counter(std::string_view name) const noexcept;

  // Several lines: "core 1 (cpu 1): <counters>", "  io_uring: <setup>; name=on name=off ...",
  // "  device: <counters>", then "  thread <id>: <port counters> now queued=.. taken=..".
  std::string to_string() const;
};

std::ostream& operator<<(std::ostream& os, const CoreSnapshot& s);

// How a core wakes a sleeping core.
enum class WakeMode {
  kMsgRing,  // IORING_OP_MSG_RING from the waker's own ring (threads that are not cores: eventfd)
  kEventfd,  // write the sleeper's eventfd, which its ring is reading
};

// A timer on a core's loop: fires fire(this) at or after `when`, on the core.
struct CoreTimer {
  absl::Time when;
  void (*fire)(CoreTimer*) noexcept = nullptr;
  std::size_t heap_index = static_cast<std::size_t>(-1);  // in the core's heap; -1: not armed
  std::uint64_t seq = 0;                                  // ties: first armed, first fired
};

class Core final : public Context {
 public:
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;
  ~Core();

  int id() const noexcept { return id_; }
  int cpu() const noexcept { return cpu_; }
  Runtime& runtime() const noexcept { return rt_; }

  // The calling thread's core, or nullptr on a thread that is not a core.
  static Core* current() noexcept { return current_; }

  void schedule(std::coroutine_handle<> h) noexcept override;
  void post(CoWaiter& w) noexcept override;
  void post_reply(Message& m) noexcept override;

  // Hands e to this core from any thread; it is handled on this core, in order per sender.
  // Once the core has stopped, entries are refused at once instead: a send is replied
  // -ECANCELED, a reply only completes its message, an abort or a resumption is dropped (the
  // stopping runtime destroys parked threads itself), a call runs on the caller's thread.
  void deliver(const CoreEntry& e) noexcept;

  // True once stop() told this core to stop.
  bool stopped() const noexcept { return stop_.load(std::memory_order_acquire); }
  // True once stop() has sealed this core: nothing runs on it again (Context::finished).
  bool finished() const noexcept override { return finished_.load(std::memory_order_acquire); }

  // How long this core polls before it sleeps (RuntimeOptions::poll_before_sleep by default).
  void set_poll_before_sleep(absl::Duration d) noexcept {
    poll_ns_.store(absl::ToInt64Nanoseconds(d), std::memory_order_relaxed);
  }
  template <class Rep, class Period>
  void set_poll_before_sleep(std::chrono::duration<Rep, Period> d) noexcept {
    set_poll_before_sleep(to_absl(d));
  }

  // Entries waiting for space in a full ring to another core (on this core's thread only). While
  // it is not zero the core holds back its producers (see the top of this file).
  std::size_t backlog() const noexcept { return backlog_; }

  // On this core's thread: resume h now, or, while the core holds back (backlog() > 0), queue it
  // on the run queue behind the backlog.
  void resume_here(std::coroutine_handle<> h) noexcept {
    if (backlog_ == 0) {
      h.resume();
    } else {
      ready_.push_back(h);
    }
  }

  // Timers (on this core's thread only). Once the runtime's stop has sealed the core, every timer
  // is disarmed (heap_index -1): what holds one need not touch the core again.
  void arm(CoreTimer& t) noexcept;
  void disarm(CoreTimer& t) noexcept;

  CoreCounters counters() const;

  // All of this core's counters and features at once (CoreSnapshot): its own, its device
  // port's and those of the thread ports living here. On this core's thread (a lightweight
  // thread here), or on any thread once the core has stopped and been sealed by stop();
  // elsewhere it throws std::logic_error. From a plain thread while the core runs, use
  // Runtime::snapshot(core), which takes it here.
  CoreSnapshot snapshot();

  // The ring, for device ports (io/): submissions from this core's thread only. A CQE whose
  // user_data is a CqeHandler* is passed to it.
  io_uring* ring() noexcept { return &ring_; }
  struct CqeHandler {
    virtual void on_cqe(const io_uring_cqe& cqe) noexcept = 0;

   protected:
    ~CqeHandler() = default;
  };
  // Which ring features the kernel granted (SINGLE_ISSUER, DEFER_TASKRUN, MSG_RING).
  const std::string& ring_features() const noexcept { return ring_features_; }
  // Device ports count the operations they have in flight on this ring, so the core knows to
  // collect completions while it is busy (DEFER_TASKRUN posts them only when asked).
  void io_started() noexcept { ++io_in_flight_; }
  void io_finished() noexcept { --io_in_flight_; }
  std::uint64_t io_in_flight() const noexcept { return io_in_flight_; }

  // The device layer (io/) attached to this core. The core submits what was prepared on its ring
  // once per loop turn, after calling flush() (a device queues there what found the submission
  // queue full); when the core stops it calls drain(), which must cancel what is in flight and
  // reap it, so that every device message is replied before the ring goes away.
  // The core owns its device, which lives until the Core itself goes (after the runtime's stop,
  // so that objects the stop destroys may still hand their buffers back to it).
  struct Device {
    virtual void flush() noexcept = 0;
    virtual void drain() noexcept = 0;
    // Adds the device's counters and features to a snapshot (on this core's thread).
    virtual void report(CoreSnapshot& s) const = 0;
    virtual ~Device() = default;
    // Set by the device while it holds work that only flush() sends: the loop calls flush() at
    // its submit only then (the common turn has nothing in a backlog).
    bool needs_flush = false;
  };
  // On this core's thread; one device per core.
  void attach_device(std::unique_ptr<Device> d) noexcept { device_ = std::move(d); }
  // On this core's thread: submit what is prepared now (a device whose submission queue is full).
  int submit() noexcept;
  // On this core's thread: reap and dispatch the completions there now; returns how many.
  std::size_t reap() noexcept { return reap_cqes(); }

 private:
  friend class Runtime;
  friend class ThreadPort;  // counts messages begun at this core's ports
  Core(Runtime& rt, int id, int cpu, std::size_t ring_capacity, WakeMode wake);

  void start();
  void run();
  bool turn();
  void process(const CoreEntry& e);
  void push_out(int target, const CoreEntry& e) noexcept;
  // Publishes what this turn pushed to other cores' inboxes (most turns pushed nothing).
  void flush_out() noexcept {
    if (!dirty_.empty()) flush_dirty();
  }
  void flush_dirty() noexcept;
  void idle();
  void wake_from(Core* waker) noexcept;
  void arm_eventfd_read() noexcept;
  static void refuse(const CoreEntry& e) noexcept;
  void seal() noexcept;
  std::size_t reap_cqes() noexcept;
  std::size_t fire_timers();
  void heap_up(std::size_t i) noexcept;
  void heap_down(std::size_t i) noexcept;
  // Is there anything to do? While polling, each inbox ring is looked at through the one slot it
  // fills next; about to sleep (after storing sleeping_), through its published count, seq_cst.
  bool has_visible_work(bool about_to_sleep) noexcept;

  static inline thread_local Core* current_ = nullptr;
  static constexpr unsigned kSqEntries = 256;
  static constexpr unsigned kCqEntries = 8192;

  Runtime& rt_;
  const int id_;
  const int cpu_;
  const WakeMode wake_mode_;
  std::thread thread_;

  // Ready coroutines scheduled on this core by itself. The fields above are read by other cores
  // (the vtable pointer, id_, rt_) and written by nobody once the core runs; from here on the
  // core's own hot state starts on a cache line of its own.
  alignas(64) std::deque<std::coroutine_handle<>> ready_;

  // Inboxes: one ring per sender core (owned here, written by the sender).
  std::vector<std::unique_ptr<detail::SpscRing<CoreEntry>>> inbox_;
  // Outgoing: per receiver core, its ring from this core (cached here: the receiver's Core
  // object is its own hot memory), entries waiting for ring space, and whether to publish.
  std::vector<detail::SpscRing<CoreEntry>*> outbox_;
  std::vector<std::deque<CoreEntry>> overflow_;
  std::vector<int> dirty_;
  std::vector<char> is_dirty_;
  std::size_t backlog_ = 0;  // entries in overflow_, all targets

  // From threads that are not cores.
  std::mutex foreign_mu_;
  std::vector<CoreEntry> foreign_;
  std::vector<CoreEntry> foreign_batch_;  // the core's side of a swap, reused: no allocation
  bool sealed_ = false;                   // under foreign_mu_: the core's thread has ended
  // Fields other threads touch live on cache lines of their own, away from the core's own hot
  // state, so a sender's look at `sleeping_` does not steal a line the core is writing.
  alignas(64) std::atomic<std::uint64_t> foreign_pending_{0};
  alignas(64) std::atomic<bool> sleeping_{false};
  alignas(64) std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};  // set by seal()
  std::atomic<std::int64_t> poll_ns_{0};

  io_uring ring_{};
  int ring_fd_ = -1;
  int event_fd_ = -1;
  std::uint64_t event_buf_ = 0;
  bool eventfd_armed_ = false;
  std::uint64_t io_in_flight_ = 0;
  std::string ring_features_;
  // Set on the core's thread before start() returns, constant after: readable anywhere.
  unsigned setup_flags_ = 0;      // IORING_SETUP_* the ring was created with
  unsigned kernel_features_ = 0;  // IORING_FEAT_* the kernel reported
  bool registered_fd_ = false;    // io_uring_register_ring_fd succeeded
  bool msg_ring_ = false;         // the kernel has IORING_OP_MSG_RING
  std::unique_ptr<Device> device_;

  std::vector<CoreTimer*> timers_;
  std::uint64_t timer_seq_ = 0;

  // This core's thread ports, by handle (entries name them so).
  detail::PortTable ports_;

  // Counters: written by this core only; read by anyone (relaxed).
  struct alignas(64) AtomicCounters {
    std::atomic<std::uint64_t> begun_local{0}, begun_cross_core{0}, queued{0};
    std::atomic<std::uint64_t> resumed{0}, sent_cross_core{0}, received{0}, overflowed{0},
        held_back{0}, wakeups_sent{0}, wakeups{0}, loop_turns{0}, sleeps{0}, timers_fired{0};
  } counters_;
};

namespace detail {
// The calling thread's core; std::logic_error naming `what` on a thread that is not a core.
inline Core& current_core_or_throw(const char* what) {
  Core* c = Core::current();
  if (c == nullptr) throw std::logic_error(std::string("msgport: ") + what + " outside a core");
  return *c;
}
}  // namespace detail

// The core the caller runs on (DragonFly's mycpu): from a lightweight thread, its core. On a
// thread that is not a core it throws std::logic_error.
inline Core& this_core() { return detail::current_core_or_throw("this_core()"); }

}  // namespace msgport
