// msgport/io/tcp.h — TCP over device ports: SocketAddress, TcpListener, TcpStream.
//
//   auto addr = SocketAddress::parse("127.0.0.1", 8080);             // or "::1"
//   auto listener = TcpListener::bind(*addr);                          // SO_REUSEPORT: one per
//   core for (;;) {
//     absl::StatusOr<TcpStream> conn = co_await listener->accept();   // multishot accept
//     ...
//   }
//   auto stream = co_await TcpStream::connect(*addr);
//   int n = co_await stream->send(bytes);       // the whole buffer (goes on after short sends)
//   Received r = co_await stream->receive();    // multishot recv into the core's buffer ring
//   // r.bytes() ... r is handed back to the ring when it goes
//
// Every operation is a device message on the calling core (io/device_port.h): awaited on a core,
// completing inline when it can (a send with room in the socket buffer, a recv with data there)
// and through the ring otherwise, replied exactly once, after the kernel is done with its buffer.
// Errors are -errno results, or absl::Status naming the operation and the address.
//
// receive() keeps one multishot recv armed per stream, with buffers from the core's BufferRing
// (io/buffer_ring.h): an idle stream holds no receive buffer. When the ring runs dry the kernel
// ends the multishot (-ENOBUFS); the stream re-arms as soon as buffers come back, and its reader
// just waits meanwhile. accept() keeps one multishot accept armed per listener.
//
// A listener and a stream are used on one core (the one their multishot is armed on), by one
// reader at a time. Both move; destroying one with a multishot in flight cancels it and closes
// the descriptor once the kernel has let go.
#pragma once

#include <absl/status/statusor.h>
#include <msgport/io/buffer_ring.h>
#include <msgport/io/io_call.h>
#include <msgport/ports/task.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace msgport::io {

// An IPv4 or IPv6 address and port (numeric hosts only: no name lookups).
class SocketAddress {
 public:
  SocketAddress() = default;
  static absl::StatusOr<SocketAddress> parse(std::string_view host, std::uint16_t port);
  static SocketAddress of(const sockaddr* sa, socklen_t len) noexcept;

  int family() const noexcept { return storage_.ss_family; }
  std::uint16_t port() const noexcept;
  const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return size_; }
  std::string to_string() const;  // "127.0.0.1:8080", "[::1]:8080"

 private:
  sockaddr_storage storage_{};
  socklen_t size_ = 0;
};

class TcpStream;

// What receive() gives: a buffer of bytes lent by the ring (handed back when this goes), the end
// of the stream (eof()), or an error (error() < 0).
class Received {
 public:
  Received() = default;
  Received(Received&& other) noexcept;
  Received& operator=(Received&& other) noexcept;
  ~Received();

  std::span<const std::byte> bytes() const noexcept { return bytes_; }
  bool eof() const noexcept { return error_ == 0 && bytes_.empty(); }
  int error() const noexcept { return error_; }  // -errno; 0 for data or end of stream
  explicit operator bool() const noexcept { return !bytes_.empty(); }

 private:
  friend class TcpStream;
  Received(BufferRing* ring, std::uint16_t bid, std::span<std::byte> bytes) noexcept
      : ring_(ring), bid_(bid), bytes_(bytes) {}
  explicit Received(int error) noexcept : error_(error) {}
  void release() noexcept;

  BufferRing* ring_ = nullptr;
  std::uint16_t bid_ = 0;
  std::span<std::byte> bytes_;
  int error_ = 0;
};

class TcpStream {
 public:
  TcpStream() = default;
  explicit TcpStream(int fd);  // takes ownership of a connected socket
  TcpStream(TcpStream&&) noexcept;
  TcpStream& operator=(TcpStream&&) noexcept;
  ~TcpStream();

  // Connects (socket, then a connect message). The error names the address.
  static Task<absl::StatusOr<TcpStream>> connect(SocketAddress to);

  int fd() const noexcept;
  bool is_open() const noexcept { return fd() >= 0; }

  // Sends the whole buffer: the result is its size, or -errno (what was sent before an error is
  // msg().sent() of the call).
  IoCall send(std::span<const std::byte> bytes) const;
  // The same, zero-copy (IORING_OP_SEND_ZC): replied after the kernel's notification that it is
  // done with the buffer. Measured slower over loopback at every size (0.3-0.7x send()'s
  // throughput, 16 KiB to 1 MiB: BM_TcpSendZc in bench/README.md), where the notification waits
  // for the receiver; it pays on a NIC with large buffers. send() stays the default everywhere.
  IoCall send_zc(std::span<const std::byte> bytes) const;
  // One recv into the caller's buffer: bytes received, 0 at the end of the stream, or -errno.
  IoCall recv(std::span<std::byte> into) const;
  IoCall shutdown(int how = SHUT_WR) const;
  // Closes through the ring (after cancelling a multishot recv still armed).
  IoCall close();

  // The next bytes from the multishot recv (see the top of this file).
  class Receive;
  Receive receive();

  struct State;

 private:
  std::unique_ptr<State> st_;
};

class [[nodiscard]] TcpStream::Receive {
 public:
  explicit Receive(State& st) noexcept : st_(st) {}
  bool await_ready();
  void await_suspend(std::coroutine_handle<> h) noexcept;
  Received await_resume() noexcept;

 private:
  State& st_;
  CoWaiter waiter_;
};

class TcpListener {
 public:
  TcpListener() = default;
  TcpListener(TcpListener&&) noexcept;
  TcpListener& operator=(TcpListener&&) noexcept;
  ~TcpListener();

  // socket, SO_REUSEADDR + SO_REUSEPORT, bind, listen: synchronous, once. EADDRINUSE and the like
  // come back as a status naming the address.
  static absl::StatusOr<TcpListener> bind(const SocketAddress& at, int backlog = 4096);

  int fd() const noexcept;
  SocketAddress local_address() const;

  // The next connection (multishot accept). An error (EMFILE, ...) is returned as a status naming
  // the operation; the listener keeps working and the next accept() re-arms.
  class Accept;
  Accept accept();

  struct State;

 private:
  std::unique_ptr<State> st_;
};

class [[nodiscard]] TcpListener::Accept {
 public:
  explicit Accept(State& st) noexcept : st_(st) {}
  bool await_ready();
  void await_suspend(std::coroutine_handle<> h) noexcept;
  absl::StatusOr<TcpStream> await_resume();

 private:
  State& st_;
  CoWaiter waiter_;
};

}  // namespace msgport::io
