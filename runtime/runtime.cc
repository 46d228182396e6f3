#include <absl/strings/str_cat.h>
#include <absl/time/time.h>
#include <msgport/ports/thread_waiter.h>
#include <msgport/runtime/runtime.h>
#include <sched.h>

#include <chrono>
#include <thread>

namespace msgport {

namespace detail {

LwStateBase::~LwStateBase() {
  // The last reference is gone: if the thread failed and nobody took the error, say so.
  if (error && !observed.load(std::memory_order_acquire)) {
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "msgport: lightweight thread %d failed and nobody joined it: %s\n", id,
                   e.what());
    } catch (...) {
      std::fprintf(stderr, "msgport: lightweight thread %d failed and nobody joined it\n", id);
    }
  }
}

}  // namespace detail

namespace {

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    for (int c = 0; c < CPU_SETSIZE; ++c) {
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
  }
  if (cpus.empty()) cpus.push_back(-1);
  return cpus;
}

}  // namespace

Runtime::Runtime(RuntimeOptions options) : options_(options) {
  std::vector<int> cpus = allowed_cpus();
  if (options_.cores <= 0) options_.cores = static_cast<int>(cpus.size());
  cores_.reserve(static_cast<std::size_t>(options_.cores));
  for (int i = 0; i < options_.cores; ++i) {
    int cpu = cpus[static_cast<std::size_t>(i) % cpus.size()];
    cores_.emplace_back(new Core(*this, i, cpu, options_.ring_capacity, options_.wake));
  }
  for (auto& from : cores_) {
    from->outbox_.assign(cores_.size(), nullptr);
    for (auto& to : cores_) {
      if (to != from)
        from->outbox_[static_cast<std::size_t>(to->id())] =
            to->inbox_[static_cast<std::size_t>(from->id())].get();
    }
  }
  for (auto& c : cores_) {
    try {
      c->start();
    } catch (...) {
      // A core could not start (its io_uring): stop the ones already running before the error
      // leaves, or destroying them would wait for threads that never end.
      for (auto& started : cores_) {
        started->stop_.store(true, std::memory_order_release);
        started->wake_from(nullptr);
      }
      for (auto& started : cores_) {
        if (started->thread_.joinable()) started->thread_.join();
      }
      throw;
    }
  }
}

Runtime::~Runtime() { stop(StopMode::kCancel); }

Core& Runtime::core(int i) {
  if (i < 0 || i >= size()) {
    throw std::out_of_range(
        absl::StrCat("msgport: no core ", i, " (the runtime has ", size(), " cores)"));
  }
  return *cores_[static_cast<std::size_t>(i)];
}

void Runtime::start_thread(std::shared_ptr<detail::LwStateBase> st, detail::LwRunner runner) {
  // The exit message is in flight while the thread runs; the thread's end replies it.
  detail::MsgAccess::state(st->exit).store(kMsgInFlight, std::memory_order_relaxed);
  st->rt = this;
  st->runner = runner.handle;
  {
    // Under the same lock stop() takes its list under: a spawn is either before stop (in the
    // list, drained or cancelled with the rest) or after it (refused).
    std::lock_guard lock(threads_mu_);
    if (stopping_.load(std::memory_order_acquire)) {
      st->runner = nullptr;
      runner.handle.destroy();
      throw std::logic_error("msgport: spawn after stop()");
    }
    st->id = next_thread_id_++;
    st->index = threads_.size();
    threads_.push_back(st);
    live_.fetch_add(1, std::memory_order_acq_rel);  // with the list: stop sees both or neither
  }
  st->core().schedule(runner.handle);
}

void Runtime::cancel_thread(std::shared_ptr<detail::LwStateBase> st) {
  // Carried to the thread's core like any cross-core entry; it keeps the thread's state alive
  // until it has run. There it ends the wait the thread is parked in, if the thread still runs
  // (a thread that ended, or was destroyed by stop, has no wait registered). A core that has
  // stopped runs the call on this thread instead (Core::deliver): it does nothing then.
  struct CancelCall : CoreCall {
    std::shared_ptr<detail::LwStateBase> thread;
  };
  auto* call = new CancelCall;
  call->thread = std::move(st);
  call->fn = [](CoreCall* c) noexcept {
    std::unique_ptr<CancelCall> self(static_cast<CancelCall*>(c));
    detail::LwStateBase& t = *self->thread;
    if (Core::current() != &t.core() || !t.runner) return;
    // Its port first: queued requests are replied -ECANCELED, later ones refused, and wait_port
    // on it returns nullptr. Then the wait it is parked in, if any, ends.
    t.port().cancel_queued();
    t.cancellation().interrupt();
  };
  Core& home = call->thread->core();
  home.deliver(CoreEntry(call, CoreEntry::kCall));
}

// On the thread's own core, when its task has returned or thrown.
void Runtime::thread_ended(detail::LwStateBase& st) noexcept {
  st.runner = nullptr;
  st.port().end();                            // refuse from now on; answer what it still held
  std::shared_ptr<detail::LwStateBase> keep;  // released after the lock
  {
    std::lock_guard lock(threads_mu_);
    // O(1): the last thread takes this one's place.
    std::size_t i = st.index;
    keep = std::move(threads_[i]);
    if (i + 1 != threads_.size()) {
      threads_[i] = std::move(threads_.back());
      threads_[i]->index = i;
    }
    threads_.pop_back();
  }
  live_.fetch_sub(1, std::memory_order_acq_rel);
  reply_msg(st.exit, 0);  // wakes a joiner; after this the handle owns the result
}

void Runtime::on_thread_cores(const std::vector<std::shared_ptr<detail::LwStateBase>>& threads,
                              absl::FunctionRef<void(detail::LwStateBase&)> fn) {
  struct Job : CoreCall {
    detail::LwStateBase* thread = nullptr;
    absl::FunctionRef<void(detail::LwStateBase&)>* fn = nullptr;
    std::atomic<std::size_t>* pending = nullptr;
    std::atomic<bool> done{false};
  };
  std::atomic<std::size_t> pending{threads.size()};
  std::vector<Job> jobs(threads.size());
  for (std::size_t i = 0; i < threads.size(); ++i) {
    jobs[i].thread = threads[i].get();
    jobs[i].fn = &fn;
    jobs[i].pending = &pending;
    jobs[i].CoreCall::fn = [](CoreCall* c) noexcept {
      auto* job = static_cast<Job*>(c);
      (*job->fn)(*job->thread);
      job->done.store(true, std::memory_order_release);
      job->pending->fetch_sub(1, std::memory_order_acq_rel);
    };
  }
  // A core that has stopped runs the call on this thread instead (Core::deliver).
  for (Job& job : jobs) job.thread->core().deliver(CoreEntry(&job, CoreEntry::kCall));
  // A core that does not get back to its loop (a coroutine that never suspends) keeps this
  // waiting: never silently. Every grace period it says which cores have not answered.
  const auto grace = absl::ToChronoNanoseconds(options_.stop_grace);
  auto next_report = std::chrono::steady_clock::now() + grace;
  while (pending.load(std::memory_order_acquire) != 0) {
    std::this_thread::yield();
    if (std::chrono::steady_clock::now() < next_report) continue;
    next_report += grace;
    std::string cores;
    for (const Job& job : jobs) {
      if (job.done.load(std::memory_order_acquire)) continue;
      absl::StrAppend(&cores, cores.empty() ? "" : ", ", job.thread->core().id());
    }
    std::fprintf(stderr,
                 "msgport: stop() is waiting for core(s) %s to get back to their loop (a "
                 "coroutine there has run for %s without suspending?)\n",
                 cores.c_str(), absl::FormatDuration(options_.stop_grace).c_str());
  }
}

std::vector<std::shared_ptr<detail::LwStateBase>> Runtime::live_threads() {
  std::lock_guard lock(threads_mu_);
  return threads_;
}

void Runtime::report_stuck() {
  std::mutex mu;
  std::string lines;
  std::size_t n = 0;
  // Each port is read on its own core (its queue has no lock).
  on_thread_cores(live_threads(), [&](detail::LwStateBase& t) {
    std::lock_guard lock(mu);
    ++n;
    absl::StrAppend(&lines, "  core ", t.core().id(), ": thread ", t.id, ": its port has ",
                    t.port().size(), " message(s) queued and ", t.port().taken(),
                    " taken and not answered\n");
  });
  std::string out = absl::StrCat(
      "msgport: stop(kDrain): ", n, " lightweight thread(s) still running after ",
      absl::FormatDuration(options_.stop_grace),
      " (waiting on a port of their own that nobody closed, or on a message nobody replies); "
      "cancelling them:\n",
      lines);
  std::fputs(out.c_str(), stderr);
  std::fflush(stderr);
}

void Runtime::stop(StopMode mode) {
  if (Core::current() != nullptr && &Core::current()->runtime() == this) {
    throw std::logic_error(
        "msgport: stop() called on one of the runtime's own cores would wait for that core to "
        "stop; call it from a plain thread (main)");
  }
  bool first;
  {
    std::lock_guard lock(threads_mu_);  // orders stop after every spawn it lets in
    first = !stopping_.exchange(true, std::memory_order_acq_rel);
  }
  if (!first) {
    // Second call: wait for the first to finish.
    while (!stopped_.load(std::memory_order_acquire)) std::this_thread::yield();
    return;
  }
  using namespace std::chrono_literals;
  const auto grace = absl::ToChronoNanoseconds(options_.stop_grace);
  // On each core, close its thread ports: new messages are refused (-ECANCELED). Drain: what is
  // queued is still served, then wait_port returns nullptr and servers end. Cancel: what is
  // queued is replied -ECANCELED at once.
  // The threads are kept alive until their cores have closed their ports: one may end meanwhile.
  if (mode == StopMode::kCancel) {
    on_thread_cores(live_threads(), [](detail::LwStateBase& t) { t.port().cancel_queued(); });
  } else {
    on_thread_cores(live_threads(), [](detail::LwStateBase& t) { t.port().close(); });
  }
  auto start = std::chrono::steady_clock::now();
  if (mode == StopMode::kDrain) {
    while (live_.load(std::memory_order_acquire) > 0) {
      if (std::chrono::steady_clock::now() - start > grace) {
        report_stuck();
        mode = StopMode::kCancel;
        on_thread_cores(live_threads(), [](detail::LwStateBase& t) { t.port().cancel_queued(); });
        break;
      }
      std::this_thread::sleep_for(200us);
    }
  }
  if (mode == StopMode::kCancel) {
    // Senders woken with -ECANCELED run on; threads still parked when all is quiet are destroyed
    // below. Let the cores settle: stop once no thread ended for a while (at most the grace).
    std::int64_t last = -1;
    auto settle = std::chrono::steady_clock::now();
    for (int quiet = 0; quiet < 5 && live_.load() > 0;) {
      std::this_thread::sleep_for(2ms);
      std::int64_t now = live_.load();
      quiet = now == last ? quiet + 1 : 0;
      last = now;
      if (std::chrono::steady_clock::now() - settle > grace) break;
    }
  }
  for (auto& c : cores_) {
    c->stop_.store(true, std::memory_order_release);
    c->wake_from(nullptr);
  }
  for (auto& c : cores_) {
    if (c->thread_.joinable()) c->thread_.join();
  }
  // Nothing runs on the cores any more: what still reaches them is refused (Core::deliver).
  for (auto& c : cores_) c->seal();
  destroy_left();
  stopped_.store(true, std::memory_order_release);
}

// Threads still parked once the cores stopped (cancel): nothing runs any more, so this thread
// does, in an order that leaves nothing dangling.
void Runtime::destroy_left() {
  std::vector<std::shared_ptr<detail::LwStateBase>> left;
  {
    std::lock_guard lock(threads_mu_);
    left.swap(threads_);
  }
  // First every port: what sits in a queue or was taken is answered before any frame goes (a
  // queued message may live in another doomed thread's frame).
  for (auto& t : left) t->port().end();
  for (auto& t : left) {
    if (!t->runner) continue;
    std::coroutine_handle<> r = t->runner;
    t->runner = nullptr;
    t->cancelled = true;
    live_.fetch_sub(1, std::memory_order_acq_rel);
    reply_msg(t->exit, -ECANCELED);  // a joiner wakes and is told it was cancelled
    r.destroy();                     // the runner's frame holds a reference to t
  }
  // Then the frames of their tasks, once every exit is replied (a frame may be parked joining
  // another of them): now, not with the last JoinHandle, which may outlive the runtime. What a
  // frame was parked on (a mutex's queue, a channel's) must not keep a request whose core is gone.
  for (auto& t : left) {
    if (t->cancelled) t->destroy_task();
  }
  left.clear();
}

std::vector<CoreCounters> Runtime::counters() const {
  std::vector<CoreCounters> all;
  for (const auto& c : cores_) all.push_back(c->counters());
  return all;
}

CoreSnapshot Runtime::snapshot(int core_id) {
  Core& c = core(core_id);
  if (Core::current() == &c) return c.snapshot();
  if (Core::current() != nullptr) {
    throw std::logic_error(
        "msgport: Runtime::snapshot(core) on another core would block this one; co_await "
        "migrate_to(that core) and call Core::snapshot() there");
  }
  struct Take : CoreCall {
    Core* core = nullptr;
    CoreSnapshot out;
    std::exception_ptr error;
    ThreadWaiter done;  // woken under its mutex: safe to let go of at once
  } take;
  take.core = &c;
  take.fn = [](CoreCall* call) noexcept {
    auto* self = static_cast<Take*>(call);
    try {
      self->out = self->core->snapshot();
    } catch (...) {
      self->error = std::current_exception();
    }
    self->done.wake(Wake::kScheduled);
  };
  // Run on the core; a core that has stopped runs it on this thread, or at its seal (stop()).
  c.deliver(CoreEntry(&take, CoreEntry::kCall));
  take.done.wait();
  if (take.error) std::rethrow_exception(take.error);
  return std::move(take.out);
}

std::string Runtime::dump_snapshots() {
  std::string out;
  for (int i = 0; i < size(); ++i) out += snapshot(i).to_string();
  return out;
}

std::string Runtime::dump_counters() const {
  std::string out;
  for (const auto& c : cores_) {
    absl::StrAppend(&out, "core ", c->id(), " (cpu ", c->cpu(), ", ", c->ring_features(),
                    "): ", c->counters().to_string(), "\n");
  }
  return out;
}

}  // namespace msgport
