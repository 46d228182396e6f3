#include "io/io.h"

#include <liburing.h>

namespace msgport::io {

const char* backend_name() noexcept { return "io_uring"; }

}  // namespace msgport::io
