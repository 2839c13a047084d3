// OFD lock on "<path>.lock" and publication of "<path>.partial" (output_lock.hpp).
#include "gfsim/output_lock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "gfsim/errors.hpp"

namespace gfsim {
namespace {

std::string errno_text(int error) { return std::strerror(error); }

// An exclusive lock over the whole file, owned by the open file description.
bool try_write_lock(int fd) {
  struct flock lock {};
  lock.l_type = F_WRLCK;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 0;
  return fcntl(fd, F_OFD_SETLK, &lock) == 0;
}

// The lock file at `path` is still the inode `fd` refers to (not unlinked by a finishing run and
// possibly recreated by a third).
bool same_inode(int fd, const std::string& path) {
  struct stat open_file {}, at_path {};
  if (fstat(fd, &open_file) != 0 || stat(path.c_str(), &at_path) != 0) return false;
  return open_file.st_dev == at_path.st_dev && open_file.st_ino == at_path.st_ino;
}

}  // namespace

OutputLock::OutputLock(std::string path) : path_(std::move(path)) {
  const std::string lock_file = lock_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      throw IoError("output file '" + path_ + "': cannot create its lock file '" + lock_file +
                    "': " + errno_text(errno));
    }
    if (!try_write_lock(fd)) {
      const int error = errno;
      ::close(fd);
      if (error == EAGAIN || error == EACCES) {
        throw IoError("output file '" + path_ + "' is being written by another gfsim run (lock '" +
                      lock_file + "' is held); choose another output.path or -o");
      }
      throw IoError("output file '" + path_ + "': cannot lock '" + lock_file +
                    "': " + errno_text(error));
    }
    if (same_inode(fd, lock_file)) {
      fd_ = fd;
      return;
    }
    ::close(fd);  // the previous holder unlinked it between our open and our lock: start over
  }
  throw IoError("output file '" + path_ + "': lock file '" + lock_file +
                "' keeps being replaced by other runs");
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(lock_path().c_str());  // while locked: see the header
  ::close(fd_);
}

void OutputLock::publish() {
  const std::string partial = partial_path();
  if (std::rename(partial.c_str(), path_.c_str()) != 0) {
    throw IoError("output file '" + path_ + "': cannot rename '" + partial +
                  "' onto it: " + errno_text(errno));
  }
  // The rename is durable once the directory is synced (a power cut would otherwise lose it).
  std::filesystem::path directory = std::filesystem::path(path_).parent_path();
  if (directory.empty()) directory = ".";
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace gfsim
