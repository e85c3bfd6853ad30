// Logging: spdlog, one line per event, prefixed with the component name.
// Never log on the per-read hot path; count instead (see metrics).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace shoal {

// Installs a stderr logger named `component` as the default. `level` is one of
// spdlog's names (trace, debug, info, warn, error, critical, off).
void InitLogging(const std::string& component, const std::string& level = "info");

}  // namespace shoal

#define LOG_DEBUG(...) SPDLOG_DEBUG(__VA_ARGS__)
#define LOG_INFO(...) SPDLOG_INFO(__VA_ARGS__)
#define LOG_WARN(...) SPDLOG_WARN(__VA_ARGS__)
#define LOG_ERROR(...) SPDLOG_ERROR(__VA_ARGS__)
