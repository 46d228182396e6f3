// examples/hello/main.cc — the smallest server: a lightweight thread that answers messages.
//
// Built twice: in msgport's own tree (build/examples/hello), and as a project of its own against
// an installed msgport (this directory's CMakeLists.txt; the install_consumer test does both that
// and a plain compiler line with pkg-config).
#include <msgport/msgport.h>
#include <unistd.h>

#include <span>
#include <string>

using namespace msgport;

struct Ask : Message {  // a request; the sender owns it (here, in the client's frame)
  int x = 0;
};

// The server: answers each request on its thread port until the port closes.
Task<void> doubler(LwThread& self) {
  while (Message* m = co_await wait_port(self.port())) {
    reply_msg(*m, 2 * static_cast<Ask*>(m)->x);
  }
}

// The client: one round trip, then the answer goes to stdout through the core's io_uring.
Task<int> client(ThreadPort& server) {
  Ask ask;
  ask.x = 21;
  int answer = co_await do_msg(server, ask);
  std::string line = "the answer is " + std::to_string(answer) + "\n";
  io::File out(STDOUT_FILENO);
  int written = co_await out.write(std::as_bytes(std::span(line)));
  out.release();  // stdout is not ours to close
  co_return written == static_cast<int>(line.size()) ? answer : -1;
}

int main() {
  Runtime rt;                                       // a core per CPU this process may use
  auto server = rt.spawn(rt.size() - 1, doubler);   // the last core (core 0 on one CPU)
  int answer = rt.block_on(client(server.port()));  // runs on core 0, waits here
  rt.stop();                                        // closes the server's port: its loop ends
  return answer == 42 ? 0 : 1;
}
