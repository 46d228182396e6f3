// The out-of-line parts of Mutex and Semaphore: their slow paths (runtime/mutex.h,
// runtime/semaphore.h).
#include <msgport/ports/check.h>
#include <msgport/runtime/mutex.h>
#include <msgport/runtime/semaphore.h>

#include <cerrno>
#include <mutex>

namespace msgport {

// ---- Mutex -------------------------------------------------------------------------------------

Mutex::~Mutex() {
  detail::end_waiters(guard_, {&waiters_},
                      "a Mutex was destroyed while lock requests wait for it (they would be "
                      "granted a mutex that is gone): let every waiter finish, or end the "
                      "threads that wait, first");
}

int Mutex::lock_slow(Message& m) noexcept {
  std::lock_guard lock(guard_);
  // kContended first, so that an unlock from now on takes the slow path and finds m queued; if
  // the mutex was free after all, it is the caller's (kContended is only conservative then: the
  // next unlock looks, finds no waiter, and frees it).
  if (state_.exchange(kContended, std::memory_order_acquire) == kFree) return 0;
  waiters_.push(m);
  return kAsync;
}

void Mutex::unlock_slow() noexcept {
  Message* next;
  MsgQueue gone;  // waiters whose core has finished: refused, never granted (sync_request.h)
  {
    std::lock_guard lock(guard_);
    if (state_.load(std::memory_order_relaxed) == kFree) {
      detail::broken_rule("Mutex::unlock: the mutex is not locked", __FILE__, __LINE__);
    }
    while ((next = waiters_.pop()) != nullptr && !detail::can_take_grant(*next)) gone.push(*next);
    if (next == nullptr) {
      state_.store(kFree, std::memory_order_release);
    } else if (waiters_.empty()) {
      // Handed over: it stays locked, now for `next`. Only lockers under guard_ set kContended
      // again, so a plain store is safe here (fast paths only change kFree and kLocked).
      state_.store(kLocked, std::memory_order_relaxed);
    }
  }
  detail::refuse_all(gone);
  // Out of the queue, the request is ours alone until this reply: an abort now finds it gone.
  if (next != nullptr) reply_msg(*next, 0);
}

void Mutex::abort(Message& m) noexcept {
  bool removed;
  {
    std::lock_guard lock(guard_);
    removed = waiters_.remove(m);
  }
  if (removed) reply_msg(m, -ECANCELED);
}

bool Mutex::remove_queued(Message& m, bool reply) noexcept {
  if (reply) return false;
  std::lock_guard lock(guard_);
  return waiters_.remove(m);
}

void Mutex::lock_blocking() {
  detail::refuse_blocking_on_a_core("Mutex::lock_blocking()");
  Message m;
  do_msg_blocking(*this, m);
}

std::size_t Mutex::waiters() const noexcept {
  std::lock_guard lock(guard_);
  return waiters_.size();
}

// ---- Semaphore ---------------------------------------------------------------------------------

Semaphore::Semaphore(std::int64_t permits) : count_(permits) {
  MSGPORT_CHECK_RULE(permits >= 0, "Semaphore: a negative number of permits");
}

Semaphore::~Semaphore() {
  detail::end_waiters(guard_, {&waiters_},
                      "a Semaphore was destroyed while acquire requests wait for it (they would "
                      "be granted by a semaphore that is gone): let every waiter finish, or end "
                      "the threads that wait, first");
}

int Semaphore::begin_msg(Message& m) {
  std::int64_t n = static_cast<AcquireMsg&>(m).n;
  if (n < 0)
    detail::broken_rule("Semaphore: acquiring a negative number of permits", __FILE__, __LINE__);
  std::lock_guard lock(guard_);
  std::int64_t c = count_.load(std::memory_order_relaxed);
  if (waiters_.empty() && c >= n) {
    count_.store(c - n, std::memory_order_relaxed);  // under guard_: the only writer
    return 0;
  }
  waiters_.push(m);
  return kAsync;
}

bool Semaphore::try_acquire(std::int64_t n) noexcept {
  if (n < 0)
    detail::broken_rule("Semaphore: acquiring a negative number of permits", __FILE__, __LINE__);
  std::lock_guard lock(guard_);
  std::int64_t c = count_.load(std::memory_order_relaxed);
  if (!waiters_.empty() || c < n) return false;
  count_.store(c - n, std::memory_order_relaxed);  // under guard_: the only writer
  return true;
}

void Semaphore::grant_locked(MsgQueue& granted, MsgQueue& gone) noexcept {
  std::int64_t c = count_.load(std::memory_order_relaxed);
  while (Message* head = waiters_.front()) {
    if (!detail::can_take_grant(*head)) {
      // Its core has finished: refused, never granted (sync_request.h), and its place goes to
      // the ones behind it. Replied -ECANCELED with the grants (reply_all).
      waiters_.pop();
      gone.push(*head);
      continue;
    }
    std::int64_t n = static_cast<AcquireMsg*>(head)->n;
    if (n > c) break;
    c -= n;
    waiters_.pop();
    granted.push(*head);  // a queue of our own: an abort looking for it in waiters_ finds it gone
  }
  count_.store(c, std::memory_order_release);  // under guard_: the only writer
}

void Semaphore::reply_all(MsgQueue& granted, MsgQueue& gone) noexcept {
  detail::refuse_all(gone);
  while (Message* m = granted.pop()) reply_msg(*m, 0);
}

void Semaphore::release(std::int64_t n) noexcept {
  if (n < 0)
    detail::broken_rule("Semaphore::release: a negative number of permits", __FILE__, __LINE__);
  MsgQueue granted, gone;
  {
    std::lock_guard lock(guard_);
    std::int64_t c = count_.load(std::memory_order_relaxed);
    if (c > INT64_MAX - n) {
      detail::broken_rule("Semaphore::release: the count overflows", __FILE__, __LINE__);
    }
    count_.store(c + n, std::memory_order_release);  // under guard_: the only writer
    grant_locked(granted, gone);
  }
  reply_all(granted, gone);
}

void Semaphore::abort(Message& m) noexcept {
  MsgQueue granted, gone;
  bool removed;
  {
    std::lock_guard lock(guard_);
    removed = waiters_.remove(m);
    // A request that left the head may let the ones behind it through.
    if (removed) grant_locked(granted, gone);
  }
  if (removed) reply_msg(m, -ECANCELED);
  reply_all(granted, gone);
}

bool Semaphore::remove_queued(Message& m, bool reply) noexcept {
  if (reply) return false;
  MsgQueue granted, gone;
  bool removed;
  {
    std::lock_guard lock(guard_);
    removed = waiters_.remove(m);
    if (removed) grant_locked(granted, gone);
  }
  reply_all(granted, gone);
  return removed;
}

void Semaphore::acquire_blocking(std::int64_t n) {
  detail::refuse_blocking_on_a_core("Semaphore::acquire_blocking()");
  AcquireMsg m(n);
  do_msg_blocking(*this, m);
}

std::size_t Semaphore::waiters() const noexcept {
  std::lock_guard lock(guard_);
  return waiters_.size();
}

}  // namespace msgport
