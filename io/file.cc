#include <absl/status/status.h>
#include <absl/strings/str_cat.h>
#include <fcntl.h>
#include <liburing.h>
#include <msgport/io/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <utility>

namespace msgport::io {

File::File(File&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

int File::release() noexcept { return std::exchange(fd_, -1); }

Task<absl::StatusOr<File>> File::open(std::string path, int flags, mode_t mode) {
  int fd = co_await IoCall([&](IoMsg& m) {
    m.op = IoOp::kOpen;
    m.fd = AT_FDCWD;
    m.path = path.c_str();
    m.flags = flags | O_CLOEXEC;
    m.mode = mode;
  });
  if (fd < 0) {
    co_return absl::ErrnoToStatus(-fd, absl::StrCat(describe(IoOp::kOpen, fd), ": ", path));
  }
  co_return File(fd);
}

IoCall File::read(std::span<std::byte> buf, std::uint64_t offset) const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kRead;
    m.fd = fd_;
    m.buf = buf.data();
    m.len = static_cast<std::uint32_t>(buf.size());
    m.offset = offset;
  });
}

IoCall File::write(std::span<const std::byte> buf, std::uint64_t offset) const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kWrite;
    m.fd = fd_;
    m.buf = const_cast<std::byte*>(buf.data());  // the kernel only reads it
    m.len = static_cast<std::uint32_t>(buf.size());
    m.offset = offset;
  });
}

IoCall File::readv(std::span<const iovec> iov, std::uint64_t offset) const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kReadv;
    m.fd = fd_;
    m.buf = const_cast<iovec*>(iov.data());
    m.len = static_cast<std::uint32_t>(iov.size());
    m.offset = offset;
  });
}

IoCall File::writev(std::span<const iovec> iov, std::uint64_t offset) const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kWritev;
    m.fd = fd_;
    m.buf = const_cast<iovec*>(iov.data());
    m.len = static_cast<std::uint32_t>(iov.size());
    m.offset = offset;
  });
}

IoCall File::fsync() const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kFsync;
    m.fd = fd_;
  });
}

IoCall File::fdatasync() const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kFsync;
    m.fd = fd_;
    m.flags = IORING_FSYNC_DATASYNC;
  });
}

IoCall File::statx(struct statx& out) const {
  return IoCall([&](IoMsg& m) {
    m.op = IoOp::kStatx;
    m.fd = fd_;
    m.path = "";
    m.flags = AT_EMPTY_PATH;
    m.mode = STATX_BASIC_STATS;
    m.statx_buf = &out;
  });
}

IoCall File::close() {
  int fd = std::exchange(fd_, -1);
  return IoCall([fd](IoMsg& m) {
    m.op = IoOp::kClose;
    m.fd = fd;
  });
}

}  // namespace msgport::io
