// msgport/io/io.h — everything in the io layer: device ports on each core's io_uring, and the typed
// wrappers over them.
//
//   io/io_msg.h       IoMsg: one operation as a message (files, sockets), deadlines, errors
//   io/device_port.h  DevicePort: the agent that submits IoMsgs on its core's ring
//   io/io_call.h      IoCall: an IoMsg awaited from a coroutine
//   io/file.h         File: open, read, write (plain and vectored), fsync, statx, close
//   io/tcp.h          SocketAddress, TcpListener (multishot accept), TcpStream (connect, send,
//                     recv, multishot receive into the core's buffer ring, send_zc, shutdown)
//   io/buffer_ring.h  BufferRing: provided buffers for multishot recv
//
// The layer includes only "runtime/...", "ports/...", liburing, Abseil and the standard library;
// nothing below it includes "io/...".
#pragma once

#include <msgport/io/buffer_ring.h>
#include <msgport/io/device_port.h>
#include <msgport/io/file.h>
#include <msgport/io/io_call.h>
#include <msgport/io/io_msg.h>
#include <msgport/io/tcp.h>

namespace msgport::io {

// The kernel I/O backend the device ports drive.
inline const char* backend_name() noexcept { return "io_uring"; }

}  // namespace msgport::io
