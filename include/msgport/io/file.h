// msgport/io/file.h — File: a file descriptor whose operations are messages to the core's device
// port.
//
//   auto f = co_await File::open("/tmp/data", O_RDWR | O_CREAT);   // absl::StatusOr<File>
//   int n = co_await f->write(bytes, 0);                          // bytes written, or -errno
//   n = co_await f->read(buffer, 0);
//   co_await f->fsync();
//   co_await f->close();
//
// Each operation is an IoCall (io/io_call.h): awaited on a core, it completes inline when the
// device port can do it without waiting (a read served from the page cache) and through the ring
// otherwise. Results are the system call's: >= 0, or -errno (io::describe names the operation and
// the error). Offsets are explicit; kNoOffset uses and advances the file position. The buffers
// belong to the kernel until the await returns.
//
// A File owns its descriptor: destroying one that is still open closes it (a plain close(2));
// close() closes it through the ring. Files move, they do not copy.
#pragma once

#include <absl/status/statusor.h>
#include <fcntl.h>
#include <msgport/io/io_call.h>
#include <msgport/ports/task.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

struct iovec;

namespace msgport::io {

inline constexpr std::uint64_t kNoOffset = static_cast<std::uint64_t>(-1);

class File {
 public:
  File() = default;
  explicit File(int fd) noexcept : fd_(fd) {}
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  ~File();

  // Opens path (relative to the working directory) through the ring. The error names the path.
  static Task<absl::StatusOr<File>> open(std::string path, int flags, mode_t mode = 0644);

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }
  // Gives up ownership of the descriptor.
  int release() noexcept;

  IoCall read(std::span<std::byte> buf, std::uint64_t offset = kNoOffset) const;
  IoCall write(std::span<const std::byte> buf, std::uint64_t offset = kNoOffset) const;
  IoCall readv(std::span<const iovec> iov, std::uint64_t offset = kNoOffset) const;
  IoCall writev(std::span<const iovec> iov, std::uint64_t offset = kNoOffset) const;
  IoCall fsync() const;
  IoCall fdatasync() const;
  IoCall statx(struct statx& out) const;
  // Closes through the ring; the File is closed (fd() == -1) from the call on.
  IoCall close();

 private:
  int fd_ = -1;
};

}  // namespace msgport::io
