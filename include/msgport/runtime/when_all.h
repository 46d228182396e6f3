// msgport/runtime/when_all.h — run several tasks at once on this core, continue when all have
// finished.
//
//   auto [a, b] = co_await when_all(fetch(x), fetch(y));   // both run concurrently
//
// Each task is started in turn (it runs until its first suspension), then when_all waits for
// each to finish, in order. Results come back as a tuple; a Task<void> gives std::monostate. If
// tasks throw, the first one's exception (in argument order) is rethrown once all have finished.
// The tasks run on the awaiting coroutine's core (to run work on other cores, spawn it and await
// the JoinHandles). They run under the awaiting lightweight thread's cancellation (runtime.h). A
// do_msg is already concurrent: it begins when called, so
// `auto a = do_msg(p, m1); auto b = do_msg(q, m2); co_await a; co_await b;` overlaps the two.
#pragma once

#include <msgport/ports/task.h>

#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace msgport {

template <class T>
using WhenAllSlot = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

namespace detail {
template <class T>
WhenAllSlot<T> take_slot(Task<T>& t) {
  if constexpr (std::is_void_v<T>) {
    t.result();
    return {};
  } else {
    return t.result();
  }
}
}  // namespace detail

template <class... Ts>
Task<std::tuple<WhenAllSlot<Ts>...>> when_all(Task<Ts>... tasks) {
  // The tasks run under the awaiting thread's cancellation, as a Task it co_awaits would.
  Cancellation* cancellation = co_await detail::own_cancellation();
  (tasks.inherit_cancellation(cancellation), ...);
  (tasks.start(), ...);
  (co_await tasks.finished(), ...);
  // Every task has finished: take the results; the first failure is rethrown.
  co_return std::tuple<WhenAllSlot<Ts>...>{detail::take_slot(tasks)...};
}

}  // namespace msgport
