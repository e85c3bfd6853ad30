// Extended attribute names: which namespace a name is in and whether Shoal
// stores it. Shared by meta (which enforces it) and the client (which answers
// the namespaces Shoal does not store without a round trip to meta).
#pragma once

#include <string_view>

#include "common/status.h"

namespace shoal {

enum class XattrNamespace {
  kUser,      // "user.": any user with the file's permissions, regular files and directories only
  kTrusted,   // "trusted.": root only; hidden from others' listings
  kSecurity,  // "security.": not stored (no LSM labels); reads find nothing
  kSystem,    // "system.": POSIX ACLs and the like, not supported
  kUnknown,   // any other prefix: not supported, as on Linux
};

constexpr size_t kXattrNameMax = 255;        // XATTR_NAME_MAX
constexpr size_t kXattrValueMax = 64 * 1024; // XATTR_SIZE_MAX
constexpr size_t kXattrListMax = 64 * 1024;  // XATTR_LIST_MAX: every name of one inode, NUL-terminated

inline XattrNamespace ClassifyXattr(std::string_view name) {
  if (name.starts_with("user.")) return XattrNamespace::kUser;
  if (name.starts_with("trusted.")) return XattrNamespace::kTrusted;
  if (name.starts_with("security.")) return XattrNamespace::kSecurity;
  if (name.starts_with("system.")) return XattrNamespace::kSystem;
  return XattrNamespace::kUnknown;
}

// The checks Linux makes on a name before any file system sees it, and the
// namespaces Shoal does not store: OUT_OF_RANGE (empty or longer than 255
// bytes), INVALID_ARGUMENT (a prefix with nothing after it), NOT_SUPPORTED.
inline Status CheckStoredXattrName(std::string_view name) {
  if (name.empty() || name.size() > kXattrNameMax)
    return Error(proto::OUT_OF_RANGE, "extended attribute name must be 1-255 bytes");
  XattrNamespace ns = ClassifyXattr(name);
  if (ns != XattrNamespace::kUser && ns != XattrNamespace::kTrusted)
    return Error(proto::NOT_SUPPORTED, "only user. and trusted. extended attributes are stored");
  if (name.find('.') + 1 == name.size()) return Error(proto::INVALID_ARGUMENT, "extended attribute name has no suffix");
  return Status::OK();
}

}  // namespace shoal
