#include "runtime/runtime.h"

#include <sched.h>

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"

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
  if (stopping_.load(std::memory_order_acquire)) {
    runner.handle.destroy();
    throw std::logic_error("msgport: spawn after stop()");
  }
  // The exit message is in flight while the thread runs; the thread's end replies it.
  detail::MsgAccess::state(st->exit).store(kMsgInFlight, std::memory_order_relaxed);
  st->rt = this;
  st->runner = runner.handle;
  {
    std::lock_guard lock(threads_mu_);
    st->id = next_thread_id_++;
    threads_.push_back(st);
  }
  live_.fetch_add(1, std::memory_order_acq_rel);
  st->core().schedule(runner.handle);
}

void Runtime::thread_ended(detail::LwStateBase& st) noexcept {
  st.runner = nullptr;
  std::shared_ptr<detail::LwStateBase> keep;  // released after the lock
  {
    std::lock_guard lock(threads_mu_);
    for (auto& p : threads_) {
      if (p.get() == &st) {
        keep = std::move(p);
        p = std::move(threads_.back());
        threads_.pop_back();
        break;
      }
    }
  }
  live_.fetch_sub(1, std::memory_order_acq_rel);
  reply_msg(st.exit, 0);  // wakes a joiner; after this the handle owns the result
}

void Runtime::stop(StopMode mode) {
  if (stopping_.exchange(true, std::memory_order_acq_rel)) {
    // Second call: wait for the first to finish.
    while (!stopped_.load(std::memory_order_acquire)) std::this_thread::yield();
    return;
  }
  using namespace std::chrono_literals;
  // On each core, close its thread ports: new messages are refused (-ECANCELED). Drain: what is
  // queued is still served, then wait_port returns nullptr and servers end. Cancel: what is
  // queued is replied -ECANCELED at once.
  // The threads are kept alive until their cores have closed their ports: one may end meanwhile.
  std::vector<std::shared_ptr<detail::LwStateBase>> alive;
  std::vector<ThreadPort*> ports;
  {
    std::lock_guard lock(threads_mu_);
    alive = threads_;
  }
  for (auto& t : alive) ports.push_back(&t->port());
  close_ports(ports, mode == StopMode::kCancel);
  ports.clear();
  alive.clear();
  if (mode == StopMode::kCancel) {
    // Senders woken with -ECANCELED run on; threads still parked when all is quiet are destroyed
    // below.
    // Let the cores settle: stop once no thread ended for a while.
    std::int64_t last = -1;
    for (int quiet = 0; quiet < 5 && live_.load() > 0;) {
      std::this_thread::sleep_for(2ms);
      std::int64_t now = live_.load();
      quiet = now == last ? quiet + 1 : 0;
      last = now;
    }
  } else {
    while (live_.load(std::memory_order_acquire) > 0) std::this_thread::sleep_for(200us);
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
  // Threads still parked (cancel): destroy their frames now that no core runs.
  std::vector<std::shared_ptr<detail::LwStateBase>> left;
  {
    std::lock_guard lock(threads_mu_);
    left.swap(threads_);
  }
  for (auto& t : left) {
    if (t->runner) {
      std::coroutine_handle<> r = t->runner;
      t->runner = nullptr;
      r.destroy();  // the runner's frame holds a reference to t; the task frame goes with t
    }
  }
  left.clear();
  stopped_.store(true, std::memory_order_release);
}

void Runtime::close_ports(const std::vector<ThreadPort*>& ports, bool cancel) {
  // Each port is closed on its own core; wait until every core has done it.
  std::atomic<std::size_t> pending{ports.size()};
  struct Cancel : CoreCall {
    ThreadPort* port = nullptr;
    std::atomic<std::size_t>* pending = nullptr;
  };
  std::vector<Cancel> jobs(ports.size());
  for (std::size_t i = 0; i < ports.size(); ++i) {
    jobs[i].fn = cancel ? [](CoreCall* c) noexcept {
      auto* job = static_cast<Cancel*>(c);
      job->port->cancel_queued();
      job->pending->fetch_sub(1, std::memory_order_acq_rel);
    }
                        : [](CoreCall* c) noexcept {
                            auto* job = static_cast<Cancel*>(c);
                            job->port->close();
                            job->pending->fetch_sub(1, std::memory_order_acq_rel);
                          };
    jobs[i].port = ports[i];
    jobs[i].pending = &pending;
  }
  for (Cancel& job : jobs) {
    job.port->owner().deliver(CoreEntry{&job, nullptr, CoreEntry::kCall});
  }
  while (pending.load(std::memory_order_acquire) != 0) std::this_thread::yield();
}

std::vector<CoreCounters> Runtime::counters() const {
  std::vector<CoreCounters> all;
  for (const auto& c : cores_) all.push_back(c->counters());
  return all;
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
