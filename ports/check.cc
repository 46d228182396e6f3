#include <msgport/ports/check.h>

#include <cstdio>
#include <cstdlib>

namespace msgport::detail {

void broken_rule(const char* rule, const char* file, int line) noexcept {
  std::fprintf(stderr, "msgport: broken rule: %s (%s:%d)\n", rule, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace msgport::detail
