// bench/asio_echo.cc — a Boost.Asio echo server with C++20 coroutines on Asio's io_uring backend,
// a peer for bench/echo_compare.sh.
//
// One io_context on one thread; a coroutine (co_spawn, use_awaitable) accepts, and one coroutine
// per connection echoes: async_read_some into a 4 KiB buffer of its own (msgport's ring buffers
// are 4 KiB too), async_write of what came. BOOST_ASIO_HAS_IO_URING with
// BOOST_ASIO_DISABLE_EPOLL makes io_uring the backend for sockets as well as files.
//
//   build/bench/asio_echo --port=7779
#ifndef BOOST_ASIO_HAS_IO_URING
#define BOOST_ASIO_HAS_IO_URING 1
#endif
#ifndef BOOST_ASIO_DISABLE_EPOLL
#define BOOST_ASIO_DISABLE_EPOLL 1
#endif

#include <absl/flags/flag.h>
#include <absl/flags/parse.h>

#include <array>
#include <boost/asio.hpp>
#include <cstdio>
#include <string>
#include <tuple>

ABSL_FLAG(int, port, 7779, "TCP port to listen on");
ABSL_FLAG(std::string, address, "127.0.0.1", "numeric address to listen on");

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// Errors (the end of the stream among them) come back as error codes, not exceptions.
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

asio::awaitable<void> echo(tcp::socket s) {
  std::array<char, 4096> buf;
  for (;;) {
    auto [rerr, n] = co_await s.async_read_some(asio::buffer(buf), use_tuple);
    if (rerr) break;
    auto [werr, w] = co_await asio::async_write(s, asio::buffer(buf.data(), n), use_tuple);
    if (werr) break;
  }
}

asio::awaitable<void> listen(tcp::acceptor& acceptor) {
  for (;;) {
    auto [err, s] = co_await acceptor.async_accept(use_tuple);
    if (err) {
      if (err == asio::error::operation_aborted) co_return;
      std::fprintf(stderr, "asio_echo: accept: %s\n", err.message().c_str());
      continue;
    }
    s.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), echo(std::move(s)), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  asio::io_context ctx(1);  // one thread: Asio may skip its locking
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(absl::GetFlag(FLAGS_address), ec);
  if (ec) {
    std::fprintf(stderr, "asio_echo: --address: %s\n", ec.message().c_str());
    return 2;
  }
  tcp::endpoint at(addr, static_cast<unsigned short>(absl::GetFlag(FLAGS_port)));
  tcp::acceptor acceptor(ctx);
  acceptor.open(at.protocol());
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(at, ec);
  if (ec) {
    std::fprintf(stderr, "asio_echo: bind: %s\n", ec.message().c_str());
    return 1;
  }
  acceptor.listen(4096);
  asio::co_spawn(ctx, listen(acceptor), asio::detached);

  asio::signal_set stop(ctx, SIGINT, SIGTERM);
  stop.async_wait([&](const boost::system::error_code&, int) {
    std::printf("asio_echo: stopping\n");
    ctx.stop();
  });
  std::printf("asio_echo: listening on %s:%d (io_uring)\n", absl::GetFlag(FLAGS_address).c_str(),
              absl::GetFlag(FLAGS_port));
  std::fflush(stdout);
  ctx.run();
  return 0;
}
