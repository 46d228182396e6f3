// examples/tcp_echo.cc — the README's device-port example: a TCP echo, for one connection.
//
// A lightweight thread on the last core accepts one connection and echoes it (echo() below is
// the README's); a client on core 0 sends a line, half-closes, and reads the echo back.
#include <msgport/io/io.h>
#include <msgport/runtime/runtime.h>

#include <cstdio>
#include <span>
#include <string>
#include <utility>

using namespace msgport;
using namespace msgport::io;

Task<long> echo(TcpStream s) {  // one lightweight thread per connection
  long n = 0;
  for (;;) {
    Received r = co_await s.receive();      // multishot recv into the core's buffer ring
    if (!r) break;                          // end of stream (r.eof()) or an error (r.error())
    int sent = co_await s.send(r.bytes());  // the whole buffer, or -errno
    if (sent < 0) break;
    n += sent;
  }  // r's buffer goes back to the ring as r goes
  co_return n;
}

// Accepts one connection and echoes it.
Task<long> serve_one(TcpListener listener) {
  absl::StatusOr<TcpStream> s = co_await listener.accept();
  if (!s.ok()) co_return -1;
  co_return co_await echo(std::move(*s));
}

// Sends `text`, half-closes, and returns what comes back.
Task<std::string> ask(SocketAddress to, std::string text) {
  absl::StatusOr<TcpStream> s = co_await TcpStream::connect(to);
  if (!s.ok()) co_return s.status().ToString();
  if (co_await s->send(std::as_bytes(std::span(text))) < 0) co_return "send failed";
  co_await s->shutdown();
  std::string back;
  for (;;) {
    Received r = co_await s->receive();
    if (!r) break;
    back.append(reinterpret_cast<const char*>(r.bytes().data()), r.bytes().size());
  }
  co_return back;
}

int main() {
  absl::StatusOr<TcpListener> listener = TcpListener::bind(*SocketAddress::parse("127.0.0.1", 0));
  if (!listener.ok()) {
    std::fprintf(stderr, "tcp_echo: %s\n", listener.status().ToString().c_str());
    return 1;
  }
  SocketAddress at = listener->local_address();
  Runtime rt;
  auto server = rt.spawn(rt.size() - 1, serve_one(std::move(*listener)));
  std::string back = rt.block_on(ask(at, "hello, msgport\n"));
  long echoed = server.join();
  rt.stop();
  std::printf("tcp_echo: %s: %s", at.to_string().c_str(), back.c_str());
  return back == "hello, msgport\n" && echoed == static_cast<long>(back.size()) ? 0 : 1;
}
