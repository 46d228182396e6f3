// examples/hello_cores.cc — the runtime on every core, messages across cores, the counters.
//
// One lightweight thread per core serves its thread port; another one per core sends
// --messages requests to the server on the next core (core i -> core i+1, the last to core 0)
// and checks every reply. Then it prints what each core did.
//
//   build/examples/hello_cores --messages=100000
#include <absl/flags/flag.h>
#include <absl/flags/parse.h>
#include <absl/time/clock.h>
#include <msgport/ports/ports.h>
#include <msgport/runtime/runtime.h>

#include <cstdio>
#include <vector>

ABSL_FLAG(int, cores, 0, "cores to run (0: every CPU this process may use)");
ABSL_FLAG(int, messages, 100000, "round trips each core makes to its neighbour");

using namespace msgport;

struct Hello : Message {
  int from_core = 0;
  int seq = 0;
};

// Replies to each request with the number of the core it ran on.
Task<long> serve(LwThread& self) {
  long served = 0;
  while (Message* m = co_await wait_port(self.port())) {
    reply_msg(*m, self.core().id());
    ++served;
  }
  co_return served;
}

// Sends `n` requests to the neighbour's port; every reply must come from the neighbour's core.
Task<int> greet(ThreadPort& neighbour, int n) {
  Hello m;
  m.from_core = Core::current()->id();
  int wrong = 0;
  for (int i = 0; i < n; ++i) {
    m.seq = i;
    if (co_await do_msg(neighbour, m) != neighbour.owner().id()) ++wrong;
  }
  co_return wrong;
}

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  RuntimeOptions options;
  options.cores = absl::GetFlag(FLAGS_cores);
  const int n = absl::GetFlag(FLAGS_messages);

  Runtime rt(options);
  std::printf("msgport: %d cores\n", rt.size());
  std::vector<JoinHandle<long>> servers;
  for (int c = 0; c < rt.size(); ++c) servers.push_back(rt.spawn(c, serve));

  absl::Time start = absl::Now();
  std::vector<JoinHandle<int>> greeters;
  for (int c = 0; c < rt.size(); ++c) {
    ThreadPort& next = servers[static_cast<std::size_t>((c + 1) % rt.size())].port();
    greeters.push_back(rt.spawn(c, greet(next, n)));
  }
  int wrong = 0;
  for (auto& g : greeters) wrong += g.join();
  absl::Duration took = absl::Now() - start;

  rt.stop(StopMode::kCancel);  // closes the servers' ports: they end
  long served = 0;
  for (auto& s : servers) served += s.join();

  std::printf("%ld round trips across cores in %s (%.0f ns each, per core), %d wrong replies\n\n",
              served, absl::FormatDuration(took).c_str(), absl::ToDoubleNanoseconds(took) / n,
              wrong);
  std::printf("%s", rt.dump_counters().c_str());
  for (int c = 0; c < rt.size(); ++c) {
    std::printf("server port on core %d: %s\n", c,
                servers[static_cast<std::size_t>(c)].port().counters().to_string().c_str());
  }
  return wrong == 0 && served == static_cast<long>(n) * rt.size() ? 0 : 1;
}
