// msgport/runtime/chrono.h — std::chrono durations and time points, taken wherever msgport takes
// an absl::Duration or absl::Time.
//
// Every public call that takes a duration or a time point (sleep_for, sleep_until, do_msg_until,
// Mutex::lock_until, Semaphore::acquire_until, RuntimeOptions, Core::set_poll_before_sleep,
// io::IoMsg::set_timeout) has one implementation, in
// absl time; its std::chrono overload converts here and calls it. So
//
//   co_await sleep_for(std::chrono::milliseconds(5));
//   co_await sleep_until(std::chrono::steady_clock::now() + 5ms);
//   int r = co_await do_msg_until(port, m, std::chrono::system_clock::now() + 10ms);
//
// behave exactly as their absl forms.
//
//   to_absl(duration)    any std::chrono::duration: the standard integral ones through
//                        absl::FromChrono, exactly; other integral periods exactly as far as
//                        absl's quarter-nanosecond ticks go; floating-point ones to the nearest
//                        tick. Past absl's range (about +-2.9e11 years) it saturates to
//                        +-absl::InfiniteDuration(), never overflows.
//   to_absl(time_point)  a std::chrono::system_clock time point: the same instant (both count
//                        from the Unix epoch). A std::chrono::steady_clock time point: steady
//                        time has no fixed epoch, so it becomes absl::Now() plus its distance
//                        from steady_clock::now(), taken when converted (a deadline already
//                        past stays past). Other clocks are not taken.
//   DurationSetting      a settings field (RuntimeOptions) that takes either form and reads as
//                        an absl::Duration.
#pragma once

#include <absl/time/clock.h>
#include <absl/time/time.h>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <ratio>
#include <type_traits>

namespace msgport {

template <class Rep, class Period>
absl::Duration to_absl(std::chrono::duration<Rep, Period> d) noexcept {
  using D = std::chrono::duration<Rep, Period>;
  if constexpr (std::is_floating_point_v<Rep>) {
    return absl::Seconds(std::chrono::duration<double>(d).count());  // saturates to infinite
  } else if constexpr (std::is_same_v<D, std::chrono::nanoseconds> ||
                       std::is_same_v<D, std::chrono::microseconds> ||
                       std::is_same_v<D, std::chrono::milliseconds> ||
                       std::is_same_v<D, std::chrono::seconds> ||
                       std::is_same_v<D, std::chrono::minutes> ||
                       std::is_same_v<D, std::chrono::hours>) {
    return absl::FromChrono(d);
  } else {
    // An unsigned count past what absl's int64 takes saturates too (a cast would wrap it).
    if constexpr (std::is_unsigned_v<Rep>) {
      if (static_cast<std::uintmax_t>(d.count()) > static_cast<std::uintmax_t>(INT64_MAX)) {
        return absl::InfiniteDuration();
      }
    }
    // Any other integral period (std::chrono::days, a duration<int, std::deci>, ...): absl's
    // multiplication saturates, its division keeps quarter nanoseconds.
    return absl::Seconds(static_cast<std::int64_t>(d.count())) * std::int64_t{Period::num} /
           std::int64_t{Period::den};
  }
}

template <class Dur>
absl::Time to_absl(std::chrono::time_point<std::chrono::system_clock, Dur> t) noexcept {
  return absl::UnixEpoch() + to_absl(t.time_since_epoch());
}

template <class Dur>
absl::Time to_absl(std::chrono::time_point<std::chrono::steady_clock, Dur> t) noexcept {
  // Differences of absl durations: no overflow even for steady_clock::time_point::max().
  absl::Duration ahead =
      to_absl(t.time_since_epoch()) - to_absl(std::chrono::steady_clock::now().time_since_epoch());
  return absl::Now() + ahead;
}

// A std::chrono time point msgport takes: of std::chrono::system_clock or steady_clock.
template <class T>
concept ChronoTimePoint = requires(T t) {
  { to_absl(t) } -> std::same_as<absl::Time>;
};

// A duration setting: assign an absl::Duration or any std::chrono::duration; reads as the
// absl::Duration it holds (so absl's functions and operators take it as one).
class DurationSetting {
 public:
  constexpr DurationSetting(absl::Duration d = absl::ZeroDuration()) noexcept : d_(d) {}
  template <class Rep, class Period>
  DurationSetting(std::chrono::duration<Rep, Period> d) noexcept : d_(to_absl(d)) {}
  constexpr operator absl::Duration() const noexcept { return d_; }
  constexpr absl::Duration get() const noexcept { return d_; }

 private:
  absl::Duration d_;
};

}  // namespace msgport
