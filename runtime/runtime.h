// runtime/ — the msgport runtime layer.
//
// Contract: this layer will hold the cores (one scheduler per CPU), the lightweight threads that
// run on them, cross-core message delivery, timers and orderly shutdown. It is built on ports/
// alone: headers and sources here include only "ports/..." and the standard library, never
// "io/..." (io/ sits on top of this layer).
#pragma once

namespace msgport::runtime {

// Name of this layer. Placeholder until the runtime lands.
const char* layer_name() noexcept;

}  // namespace msgport::runtime
