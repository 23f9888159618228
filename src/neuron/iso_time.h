// neuron/iso_time.h: `sentAt` / `startedAt` stamps, ISO-8601 UTC with
// milliseconds ("2024-01-01T12:00:10.000Z"), made from the host's `now`.
#pragma once

#include <string>

#include "neuron/vocabulary.h"

namespace neuron {

inline constexpr std::size_t kIsoTimeLength = 24;

// Writes exactly kIsoTimeLength characters (no terminator) into `out`.
// Years outside 0000..9999 are clamped to that range.
void format_iso_time(TimeMs epoch_ms, char* out);
std::string iso_time(TimeMs epoch_ms);

}  // namespace neuron
