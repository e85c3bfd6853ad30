// Random identities: cluster UUIDs and disk incarnations. Drawn from the
// kernel's random source (getrandom), never from a seeded PRNG, so that two
// clusters or two formats of one disk never share an identity by accident.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace shoal {

// A random (version 4) UUID in its 36-character text form, lowercase hex:
// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".
std::string NewUuid();

// True when `s` is a UUID in the text form NewUuid() produces (any version).
bool IsUuid(std::string_view s);

// A random 64-bit number, never 0 (0 means "no identity" on the wire).
uint64_t RandomNonZero64();

}  // namespace shoal
