// The io layer on real files and pipes: the device port's contract (inline or through the ring,
// the same results), errors as -errno with readable names, deadlines, aborts, a full submission
// queue, an overflowing completion queue, and stop with operations in flight.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/stat.h>
#include <msgport/io/io.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/timer.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/watchdog.h"

namespace msgport::io {
namespace {

using msgport::testing::Watchdog;

RuntimeOptions one_core() {
  RuntimeOptions o;
  o.cores = 1;
  return o;
}

std::string temp_dir() {
  char tmpl[] = "/tmp/msgport-io-XXXXXX";
  const char* dir = mkdtemp(tmpl);
  if (dir == nullptr) std::abort();
  return dir;
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

Task<std::string> write_then_read(std::string path, bool inline_path) {
  device_port().set_inline(inline_path);
  auto f = co_await File::open(path, O_RDWR | O_CREAT | O_TRUNC);
  if (!f.ok()) co_return f.status().ToString();
  std::string text = "hello, device port";
  if (int n = co_await f->write(bytes_of(text), 0); n != static_cast<int>(text.size())) {
    co_return describe(IoOp::kWrite, n);
  }
  if (int r = co_await f->fsync(); r != 0) co_return describe(IoOp::kFsync, r);
  if (int r = co_await f->fdatasync(); r != 0) co_return describe(IoOp::kFsync, r);
  std::string back(text.size(), '\0');
  int n = co_await f->read(std::as_writable_bytes(std::span(back.data(), back.size())), 0);
  if (n != static_cast<int>(text.size())) co_return describe(IoOp::kRead, n);
  struct statx st {};
  if (int r = co_await f->statx(st); r != 0) co_return describe(IoOp::kStatx, r);
  if (st.stx_size != text.size()) co_return "statx size " + std::to_string(st.stx_size);
  if (int r = co_await f->close(); r != 0) co_return describe(IoOp::kClose, r);
  device_port().set_inline(true);
  co_return back;
}

TEST(IoFile, WriteReadFsyncStatxCloseInlineAndThroughTheRing) {
  Watchdog wd("file operations through the device port");
  Runtime rt(one_core());
  std::string dir = temp_dir();
  EXPECT_EQ(rt.block_on(write_then_read(dir + "/a", true)), "hello, device port");
  EXPECT_EQ(rt.block_on(write_then_read(dir + "/b", false)), "hello, device port");
  rt.stop();
}

Task<std::string> vectored(std::string path) {
  auto f = co_await File::open(path, O_RDWR | O_CREAT | O_TRUNC);
  if (!f.ok()) co_return f.status().ToString();
  char a[] = "abc", b[] = "defg";
  iovec out[] = {{a, 3}, {b, 4}};
  if (int n = co_await f->writev(out, 10); n != 7) co_return describe(IoOp::kWritev, n);
  char x[4] = {}, y[3] = {};
  iovec in[] = {{x, 4}, {y, 3}};
  if (int n = co_await f->readv(in, 10); n != 7) co_return describe(IoOp::kReadv, n);
  co_return std::string(x, 4) + "|" + std::string(y, 3);
}

TEST(IoFile, VectoredWritesAndReadsAtAnOffset) {
  Watchdog wd("vectored file operations");
  Runtime rt(one_core());
  EXPECT_EQ(rt.block_on(vectored(temp_dir() + "/v")), "abcd|efg");
  rt.stop();
}

TEST(IoFile, ErrorsAreNegativeErrnoWithTheOperationsName) {
  Watchdog wd("failing file operations");
  Runtime rt(one_core());
  auto missing = rt.block_on([]() -> Task<std::string> {
    auto f = co_await File::open("/nonexistent/dir/file", O_RDONLY);
    co_return f.ok() ? std::string("opened?") : f.status().ToString();
  }());
  EXPECT_NE(missing.find("NOT_FOUND"), std::string::npos) << missing;
  EXPECT_NE(missing.find("/nonexistent/dir/file"), std::string::npos) << missing;
  int bad = rt.block_on([]() -> Task<int> {
    File f(1000000);  // not a descriptor
    char c;
    int r = co_await f.read(std::as_writable_bytes(std::span(&c, 1)), 0);
    f.release();
    co_return r;
  }());
  EXPECT_EQ(bad, -EBADF);
  EXPECT_EQ(describe(IoOp::kRead, bad), "read: Bad file descriptor (EBADF)");
  rt.stop();
}

TEST(IoFile, DevicePortsLiveOnCores) {
  EXPECT_THROW(device_port(), std::logic_error) << "a plain thread has no device port";
}

// A read from an empty pipe waits in the kernel: the shape for deadlines and aborts.
struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    ::close(r);
    ::close(w);
  }
};

void prep_pipe_read(IoMsg& m, int fd, char* buf) {
  m.op = IoOp::kRead;
  m.fd = fd;
  m.buf = buf;
  m.len = 1;
}

TEST(IoDeadline, AnOperationPastItsDeadlineEndsETIMEDOUT) {
  Watchdog wd("a pipe read with a 10 ms deadline");
  Runtime rt(one_core());
  Pipe p;
  int r = rt.block_on([](int fd) -> Task<int> {
    char c;
    IoCall call([&](IoMsg& m) { prep_pipe_read(m, fd, &c); });
    call.msg().set_timeout(std::chrono::milliseconds(10));
    co_return co_await call;
  }(p.r));
  EXPECT_EQ(r, -ETIMEDOUT);
  // One that completes in time keeps its result.
  ASSERT_EQ(::write(p.w, "x", 1), 1);
  r = rt.block_on([](int fd) -> Task<int> {
    char c;
    IoCall call([&](IoMsg& m) { prep_pipe_read(m, fd, &c); });
    call.msg().set_timeout(absl::Seconds(5));
    co_return co_await call;
  }(p.r));
  EXPECT_EQ(r, 1);
  rt.stop();
}

TEST(IoAbort, AnAbortedReadIsRepliedECANCELEDOnceAfterTheKernelLetsGo) {
  Watchdog wd("an aborted pipe read");
  Runtime rt(one_core());
  Pipe p;
  auto r = rt.block_on([](int fd) -> Task<std::vector<int>> {
    char c;
    IoMsg m;
    prep_pipe_read(m, fd, &c);
    send_msg(device_port(), m);
    co_await sleep_for(absl::Milliseconds(2));
    abort_msg(m);
    abort_msg(m);  // twice: harmless
    int first = co_await wait_msg(m);
    // Sent again at once: the abort is over, this one completes normally.
    IoMsg again;
    prep_pipe_read(again, fd, &c);
    again.set_timeout(absl::Milliseconds(5));
    int second = co_await do_msg(device_port(), again);
    co_return std::vector<int>{first, second};
  }(p.r));
  EXPECT_EQ(r, (std::vector<int>{-ECANCELED, -ETIMEDOUT}));
  rt.stop();
}

// Far more messages than the submission queue holds, sent before any is awaited: the port keeps
// them in order and every one is replied; more than the completion queue holds, too.
Task<long> many_nops(int n) {
  std::vector<IoMsg> msgs(static_cast<std::size_t>(n));
  for (auto& m : msgs) send_msg(device_port(), m);  // kNop: always through the ring
  long ok = 0;
  for (auto& m : msgs) ok += (co_await wait_msg(m)) == 0;
  co_return ok;
}

TEST(IoBackpressure, AFullSubmissionQueueAndAnOverflowingCompletionQueueLoseNothing) {
  Watchdog wd("20000 nops through a 256-entry submission queue");
  Runtime rt(one_core());
  EXPECT_EQ(rt.block_on(many_nops(20000)), 20000);
  auto counters =
      rt.block_on([]() -> Task<DevicePort::Counters> { co_return device_port().counters(); }());
  EXPECT_GE(counters.submitted, 20000u);
  rt.stop();
}

TEST(IoStop, StopRepliesEveryDeviceMessageInFlight) {
  Watchdog wd("stop with a pipe read in flight");
  Pipe p;
  auto m = std::make_unique<IoMsg>();
  char c;
  prep_pipe_read(*m, p.r, &c);
  {
    Runtime rt(one_core());
    auto reader = rt.spawn(
        0, [](IoMsg& msg) -> Task<int> { co_return co_await do_msg(device_port(), msg); }(*m));
    while (!m->in_flight()) std::this_thread::yield();
    rt.stop(StopMode::kCancel);
    EXPECT_THROW(reader.join(), ThreadCancelled);
  }
  EXPECT_TRUE(m->done());
  EXPECT_EQ(m->result(), -ECANCELED);
}

}  // namespace
}  // namespace msgport::io
