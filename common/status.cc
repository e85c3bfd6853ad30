#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace shoal {

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = proto::ErrorCode_Name(code_);
  if (!message_.empty()) s += ": " + message_;
  return s;
}

int Status::ToErrno() const {
  switch (code_) {
    case proto::OK: return 0;
    case proto::INVALID_ARGUMENT: return EINVAL;
    case proto::NOT_FOUND: return ENOENT;
    case proto::ALREADY_EXISTS: return EEXIST;
    case proto::PERMISSION_DENIED: return EACCES;
    case proto::NOT_PERMITTED: return EPERM;
    case proto::NOT_DIRECTORY: return ENOTDIR;
    case proto::IS_DIRECTORY: return EISDIR;
    case proto::NOT_EMPTY: return ENOTEMPTY;
    case proto::NAME_TOO_LONG: return ENAMETOOLONG;
    case proto::NO_SPACE: return ENOSPC;
    case proto::TIMEOUT: return ETIMEDOUT;
    case proto::AUTH_FAILED: return EACCES;
    case proto::PROTOCOL_ERROR: return EPROTO;
    case proto::TOO_LARGE: return EFBIG;
    case proto::CANCELLED: return ECANCELED;
    case proto::OUT_OF_RANGE: return ERANGE;
    case proto::LOOP: return ELOOP;
    case proto::NOT_SUPPORTED: return EOPNOTSUPP;
    case proto::TOO_MANY_LINKS: return EMLINK;
    case proto::ATTR_NOT_FOUND: return ENODATA;
    case proto::ARG_TOO_BIG: return E2BIG;
    default: return EIO;  // IO_ERROR, CHECKSUM_MISMATCH, UNAVAILABLE, INTERNAL, STALE_VERSION
  }
}

Status Status::FromErrno(int err, const std::string& context) {
  ErrorCode code;
  switch (err) {
    case ENOENT: code = proto::NOT_FOUND; break;
    case EEXIST: code = proto::ALREADY_EXISTS; break;
    case EACCES: code = proto::PERMISSION_DENIED; break;
    case EPERM: code = proto::NOT_PERMITTED; break;
    case ENOSPC: case EDQUOT: code = proto::NO_SPACE; break;
    case EINVAL: code = proto::INVALID_ARGUMENT; break;
    case ETIMEDOUT: case EAGAIN: code = proto::TIMEOUT; break;
    case ECONNREFUSED: case ECONNRESET: case EPIPE: case ENOTCONN: case EHOSTUNREACH:
      code = proto::UNAVAILABLE; break;
    default: code = proto::IO_ERROR; break;
  }
  return Status(code, context + ": " + std::strerror(err));
}

}  // namespace shoal
