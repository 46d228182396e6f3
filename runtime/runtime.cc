#include "runtime/runtime.h"

namespace msgport::runtime {

const char* layer_name() noexcept { return "runtime"; }

}  // namespace msgport::runtime
