// msgport/ports/check.h — how msgport reports a broken rule of the message contract.
//
// Misuse that C++ cannot reject at compile time (sending a message still in flight, replying
// twice, waiting on a message nobody sent, ...) is caught by MSGPORT_CHECK_RULE in debug builds
// (NDEBUG undefined). A failed check prints "msgport: broken rule: <rule>" with the place and
// aborts the process: loud, and before any other message is touched. In release builds the
// checks compile to nothing, so the hot paths carry no cost for them.
#pragma once

namespace msgport::detail {

// Prints the broken rule and where it was caught, then aborts. Never returns.
[[noreturn]] void broken_rule(const char* rule, const char* file, int line) noexcept;

}  // namespace msgport::detail

#ifdef NDEBUG
#define MSGPORT_CHECK_RULE(cond, rule) static_cast<void>(0)
#else
#define MSGPORT_CHECK_RULE(cond, rule)                                     \
  do {                                                                     \
    if (!(cond)) ::msgport::detail::broken_rule(rule, __FILE__, __LINE__); \
  } while (false)
#endif
