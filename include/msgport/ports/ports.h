// msgport/ports/ports.h — everything in the ports layer: messages, ports, the message API, port
// kinds.
#pragma once

#include <msgport/ports/callback_port.h>
#include <msgport/ports/message.h>
#include <msgport/ports/ops.h>
#include <msgport/ports/port.h>
#include <msgport/ports/queue_port.h>
#include <msgport/ports/reply_ports.h>
#include <msgport/ports/serialized_port.h>
#include <msgport/ports/shim_port.h>
#include <msgport/ports/task.h>
