// The file seam under the chunk store and the target stamp (leveldb's Env
// idea): every mutating file-system call a target makes goes through FileEnv,
// so that tests can inject the failures disks really produce.
//
// Real: RealFileEnv() (POSIX calls). Test: FaultFileEnv (fault_file_env.h),
// which wraps the real one and injects ENOSPC, EIO on write or on sync, short
// writes, and a crash that drops everything not yet made durable.
//
// Durability contract (what the real env gives and the fault env models):
// bytes written to a file are durable after File::Sync(); a file's creation,
// a rename and an unlink are durable after SyncDir() of the directory holding
// the name. Errors: NOT_FOUND for a missing path, NO_SPACE for ENOSPC,
// IO_ERROR for EIO and for a short write that made no progress.
//
// Thread-safety: an env may be used from any thread; one File is used by one
// writer at a time, while any number of readers may use its fd.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace shoal::storage {

class File {
 public:
  virtual ~File() = default;  // closes the descriptor
  // The descriptor, for io_uring reads. Stays valid until the File is destroyed.
  virtual int fd() const = 0;
  // Writes all of `len` bytes or fails (a short write is retried for the rest;
  // one that makes no progress is IO_ERROR).
  virtual Status PWrite(const void* data, size_t len, uint64_t offset) = 0;
  // Reads up to `len` bytes; fewer only at end of file.
  virtual Result<size_t> PRead(void* data, size_t len, uint64_t offset) = 0;
  // fdatasync: the bytes written so far are durable when it returns OK.
  virtual Status Sync() = 0;
  virtual Result<uint64_t> Size() = 0;
};

enum class OpenMode {
  kRead,          // existing file, read only
  kCreateTrunc,   // read-write, created or emptied
  kCreateExcl,    // read-write, ALREADY_EXISTS when present
  kReadWrite,     // existing file, read-write, kept as it is
};

class FileEnv {
 public:
  virtual ~FileEnv() = default;
  // `direct`: O_DIRECT (buffers, offsets and lengths 4 KiB aligned).
  virtual Result<std::unique_ptr<File>> Open(const std::string& path, OpenMode mode, bool direct) = 0;
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // NOT_FOUND when missing.
  virtual Status Unlink(const std::string& path) = 0;
  // ALREADY_EXISTS when present, NOT_FOUND when the parent is missing.
  virtual Status MakeDir(const std::string& path) = 0;
  // Removes an empty directory; NOT_EMPTY / NOT_FOUND.
  virtual Status RemoveDir(const std::string& path) = 0;
  // Makes the names in `dir` (creations, renames, unlinks) durable.
  virtual Status SyncDir(const std::string& dir) = 0;
  // syncfs: makes every byte and name of the file system holding `dir`
  // durable, in one go (one journal commit and one device flush for many
  // files, where a sync per file and directory costs one each).
  virtual Status SyncFileSystem(const std::string& dir) = 0;
  // Names in `dir` without "." and ".."; NOT_FOUND when missing.
  virtual Result<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  virtual bool Exists(const std::string& path) = 0;
};

// The process-wide POSIX env. Never destroyed.
FileEnv* RealFileEnv();

// Helpers over any env.
// Writes `contents` to `path` durably: a temporary file, synced, renamed over
// `path`, the directory synced.
Status WriteFileDurably(FileEnv* env, const std::string& path, const std::string& contents);
// Reads a whole small file.
Result<std::string> ReadWholeFile(FileEnv* env, const std::string& path);
// MakeDir of every missing component of `path`, each made durable in its parent.
Status MakeDirsDurably(FileEnv* env, const std::string& path);

}  // namespace shoal::storage
