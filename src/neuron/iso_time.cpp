#include "neuron/iso_time.h"

#include <algorithm>

namespace neuron {
namespace {

// Howard Hinnant's days_from_civil inverse: days since 1970-01-01 to y/m/d.
void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += (m <= 2);
}

void put(char* out, unsigned value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

}  // namespace

void format_iso_time(TimeMs epoch_ms, char* out) {
  // 0000-01-01 .. 9999-12-31T23:59:59.999, so every stamp has the same width.
  constexpr TimeMs kMin = -62167219200000;
  constexpr TimeMs kMax = 253402300799999;
  epoch_ms = std::clamp(epoch_ms, kMin, kMax);
  std::int64_t days = epoch_ms / 86400000;
  std::int64_t ms_of_day = epoch_ms % 86400000;
  if (ms_of_day < 0) {
    ms_of_day += 86400000;
    --days;
  }
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  const auto ms = static_cast<unsigned>(ms_of_day);
  put(out, static_cast<unsigned>(y), 4);
  out[4] = '-';
  put(out + 5, m, 2);
  out[7] = '-';
  put(out + 8, d, 2);
  out[10] = 'T';
  put(out + 11, ms / 3600000, 2);
  out[13] = ':';
  put(out + 14, ms / 60000 % 60, 2);
  out[16] = ':';
  put(out + 17, ms / 1000 % 60, 2);
  out[19] = '.';
  put(out + 20, ms % 1000, 3);
  out[23] = 'Z';
}

std::string iso_time(TimeMs epoch_ms) {
  std::string s(kIsoTimeLength, '\0');
  format_iso_time(epoch_ms, s.data());
  return s;
}

}  // namespace neuron
