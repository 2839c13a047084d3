#pragma once
// One writer per output file, and no half-created file under the output's name.
//
// OutputLock takes an OFD write lock (fcntl F_OFD_SETLK) on the sibling file "<path>.lock" for
// its lifetime, so a second gfsim writing the same path is refused at once (IoError) instead of
// truncating a file that is being written. The lock belongs to the open file description, not to
// the process: the kernel drops it when the process dies, SIGKILL included, so a stale lock file
// never blocks the next run. On release the lock file is unlinked while still locked; a process
// that opened it in the meantime sees that its inode is no longer the one at the path and retries.
//
// Files are created as "<path>.partial" (only the lock holder touches that name) and renamed onto
// `path` once their layout is on disk (publish()), so `path` is either absent, the previous
// file, or a file with a valid HDF5 signature and layout.
//
//   OutputLock lock(path);                       // IoError: "... is being written by another run"
//   h5::File::create(lock.partial_path(), ...);  // layout, H5Fstart_swmr_write (flushes)
//   lock.publish();                              // rename(partial, path)
#include <string>

namespace gfsim {

class OutputLock {
 public:
  /// Locks `path` for writing. IoError if another process holds the lock, or if the lock file
  /// cannot be created (the message names it and the cause).
  explicit OutputLock(std::string path);
  ~OutputLock();  ///< unlinks the lock file and releases the lock (never throws)
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

  const std::string& path() const { return path_; }
  std::string partial_path() const { return path_ + ".partial"; }
  std::string lock_path() const { return path_ + ".lock"; }
  /// rename(partial_path(), path()) and fsync of the directory; IoError on failure.
  void publish();

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace gfsim
