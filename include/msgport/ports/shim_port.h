// msgport/ports/shim_port.h — a forwarding shim: the local stand-in for a port that lives
// elsewhere.
//
// ShimPort<Admit> brokers every message to its target port: Admit(m) may check or translate the
// message at the boundary and return 0 to pass it on or a -errno to refuse it (the shim then
// answers that error at once). A passed message is begun by the target as if sent to it
// directly — the target becomes its holder — and a synchronous answer from the target comes
// straight back to the sender, still with no queueing. Later layers use this shape for ports on
// another core, process or machine, changing only how the message crosses.
#pragma once

#include <msgport/ports/ops.h>

#include <utility>

namespace msgport {

struct AdmitAll {
  int operator()(Message&) const noexcept { return 0; }
};

template <class Admit = AdmitAll>
requires std::is_invocable_r_v<int, Admit&, Message&>
class ShimPort final : public Port {
 public:
  explicit ShimPort(Port& target, Admit admit = Admit())
      : target_(&target), admit_(std::move(admit)) {}

  int begin_msg(Message& m) override {
    if (int err = admit_(m); err < 0) return err;
    detail::MsgAccess::holder(m).store(target_, std::memory_order_release);
    return target_->begin_msg(m);
  }

  Port& target() const noexcept { return *target_; }

 private:
  Port* target_;
  Admit admit_;
};

}  // namespace msgport
