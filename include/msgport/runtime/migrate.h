// msgport/runtime/migrate.h — move the current coroutine to another core (DragonFly's
// lwkt_setcpu_self).
//
//   co_await migrate_to(rt.core(1));   // from here on this coroutine runs on core 1
//
// The coroutine is scheduled on the target core and continues there; awaiting the core it is
// already on does not suspend. What it owns moves with it only as far as the coroutine frame
// goes: a lightweight thread's thread port stays with the core that created it.
#pragma once

#include <msgport/runtime/core.h>

#include <coroutine>

namespace msgport {

class [[nodiscard]] MigrateTo {
 public:
  explicit MigrateTo(Core& target) noexcept : target_(target) {}
  bool await_ready() const noexcept { return Core::current() == &target_; }
  void await_suspend(std::coroutine_handle<> h) noexcept { target_.schedule(h); }
  void await_resume() const noexcept {}

 private:
  Core& target_;
};

inline MigrateTo migrate_to(Core& target) noexcept { return MigrateTo(target); }

}  // namespace msgport
