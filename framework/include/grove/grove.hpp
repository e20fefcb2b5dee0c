// Everything public in Grove.
#pragma once

#include <grove/app/builtin_kinds.hpp>
#include <grove/app/kinds.hpp>
#include <grove/app/service.hpp>
#include <grove/behaviours/agent.hpp>
#include <grove/behaviours/dynamic_supervisor.hpp>
#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/keyed_registry.hpp>
#include <grove/behaviours/name_registry.hpp>
#include <grove/behaviours/partition_supervisor.hpp>
#include <grove/behaviours/pool.hpp>
#include <grove/behaviours/supervisor.hpp>
#include <grove/behaviours/table.hpp>
#include <grove/behaviours/task.hpp>
#include <grove/config/config.hpp>
#include <grove/observe/console.hpp>
#include <grove/observe/events.hpp>
#include <grove/observe/logger.hpp>
#include <grove/runtime/blocking.hpp>
#include <grove/runtime/errors.hpp>
#include <grove/runtime/events.hpp>
#include <grove/runtime/exit_reason.hpp>
#include <grove/runtime/message.hpp>
#include <grove/runtime/node.hpp>
#include <grove/runtime/pid.hpp>
#include <grove/runtime/process.hpp>
