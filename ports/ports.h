// ports/ports.h — everything in the ports layer: messages, ports, the message API, port kinds.
#pragma once

#include "ports/callback_port.h"
#include "ports/message.h"
#include "ports/ops.h"
#include "ports/port.h"
#include "ports/queue_port.h"
#include "ports/reply_ports.h"
#include "ports/serialized_port.h"
#include "ports/shim_port.h"
#include "ports/task.h"
