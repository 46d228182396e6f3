// tests/watchdog.h — bounded waits for tests: a stall is a readable failure, never a CI timeout.
//
//   Watchdog wd("the server's reply to the aborted message");   // armed for kDefaultLimit
//   ... a wait that could hang ...
//   // disarmed when wd goes out of scope
//
// If a watchdog is still armed when its limit passes, it prints
//   "watchdog: <test name> stalled after <n> s waiting for: <what>"
// and aborts the process, which fails the test (ctest runs each test in its own process). Every
// test also runs under a per-test watchdog (tests/test_main.cc) naming the test itself, so a test
// that forgets its own still fails readably. Watchdogs nest: each names its own wait.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

namespace msgport::testing {

class Watchdog {
 public:
  // Sanitizers slow everything down: the limits are generous, they catch hangs, not slowness.
  static constexpr std::chrono::seconds kDefaultLimit{60};

  explicit Watchdog(std::string what, std::chrono::seconds limit = kDefaultLimit)
      : what_(std::move(what)), thread_([this, limit] { watch(limit); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      disarmed_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  // The name printed with a stall: the running test, set by tests/test_main.cc.
  static std::string& test_name() {
    static std::string name;
    return name;
  }

 private:
  void watch(std::chrono::seconds limit) {
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, limit, [this] { return disarmed_; })) return;
    std::fprintf(stderr, "\nwatchdog: %s stalled after %lld s waiting for: %s\n",
                 test_name().c_str(), static_cast<long long>(limit.count()), what_.c_str());
    std::fflush(stderr);
    std::abort();
  }

  std::string what_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace msgport::testing
