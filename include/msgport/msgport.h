// msgport/msgport.h — every public header of msgport, for programs that want it all.
//
//   #include <msgport/msgport.h>        // with CMake: target_link_libraries(app msgport::msgport)
//                                       // or: g++ app.cc $(pkg-config --cflags --libs msgport)
//
// A program that uses one layer only includes that layer's headers and links that component
// (msgport::ports needs neither Abseil nor liburing). The layers, each including only the ones
// before it:
//   ports/    messages, ports and the message API; no OS, no scheduler
//   runtime/  cores, lightweight threads, cross-core delivery, timers, shutdown
//   io/       io_uring device ports: files and TCP as messages
#pragma once

#include <msgport/io/buffer_ring.h>
#include <msgport/io/device_port.h>
#include <msgport/io/file.h>
#include <msgport/io/io.h>
#include <msgport/io/io_call.h>
#include <msgport/io/io_msg.h>
#include <msgport/io/tcp.h>
#include <msgport/ports/callback_port.h>
#include <msgport/ports/check.h>
#include <msgport/ports/context.h>
#include <msgport/ports/message.h>
#include <msgport/ports/msg_queue.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/port.h>
#include <msgport/ports/port_counters.h>
#include <msgport/ports/ports.h>
#include <msgport/ports/queue_port.h>
#include <msgport/ports/reply_ports.h>
#include <msgport/ports/serialized_port.h>
#include <msgport/ports/shim_port.h>
#include <msgport/ports/spin_lock.h>
#include <msgport/ports/task.h>
#include <msgport/ports/thread_waiter.h>
#include <msgport/runtime/channel.h>
#include <msgport/runtime/chrono.h>
#include <msgport/runtime/core.h>
#include <msgport/runtime/gate.h>
#include <msgport/runtime/migrate.h>
#include <msgport/runtime/mutex.h>
#include <msgport/runtime/port_table.h>
#include <msgport/runtime/runtime.h>
#include <msgport/runtime/select.h>
#include <msgport/runtime/semaphore.h>
#include <msgport/runtime/spsc_ring.h>
#include <msgport/runtime/sync_request.h>
#include <msgport/runtime/thread_port.h>
#include <msgport/runtime/timer.h>
#include <msgport/runtime/when_all.h>
#include <msgport/runtime/yield.h>
