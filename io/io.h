// io/ — io_uring device ports.
//
// Contract: this layer will expose files, sockets and timers as msgport ports backed by
// io_uring, including cancellation of in-flight requests. It includes only "runtime/...",
// "ports/...", liburing and the standard library; nothing below it (ports/, runtime/) may
// include "io/...".
#pragma once

namespace msgport::io {

// Name of the kernel I/O backend this layer drives ("io_uring"). Placeholder until the device
// ports land.
const char* backend_name() noexcept;

}  // namespace msgport::io
