#pragma once
// A thin RAII layer over the HDF5 C API (hdf5.h stays in src/hdf5_file.cpp). Every failing HDF5
// call becomes a gfsim::IoError (errors.hpp) naming the file, the operation and the object, plus
// HDF5's innermost error description; HDF5's own error-stack printing to stderr is switched off.
//
//   auto file = h5::File::create("run.h5", h5::FileFormat::v110);
//   auto value = file.create_group("observables/loss").create_extendible_dataset(
//       "value", h5::ElementType::float64, /*width=*/0, /*chunk_rows=*/1024);
//   value.append_rows(std::span<const double>(samples));
//   file.start_swmr_write();
//   file.flush();
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gfsim::h5 {

/// HDF5's hid_t (int64_t since HDF5 1.10; hdf5_file.cpp checks the two agree).
using Id = std::int64_t;

/// Owns one HDF5 identifier and closes it with the H5*close matching its type. Move-only.
class Handle {
 public:
  Handle() = default;
  explicit Handle(Id id) noexcept : id_(id) {}
  ~Handle() { close(); }
  Handle(Handle&& other) noexcept : id_(other.release()) {}
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  Id get() const { return id_; }
  /// Closes the identifier (if any); false if HDF5 reported an error. Never throws.
  bool close() noexcept;

 private:
  Id release() noexcept {
    Id id = id_;
    id_ = -1;
    return id;
  }
  Id id_ = -1;
};

/// Element type of a dataset. int8_enum: an HDF5 enum over int8 whose members are named at creation
/// (HDFView and h5py show the names); C++ writes and reads its values as small integers.
enum class ElementType { float64, int64, int8_enum };

/// Anything that carries attributes: a file's root group, a group, a dataset.
class Object {
 public:
  Id id() const { return handle_.get(); }
  const std::string& file_path() const { return file_path_; }
  /// Path of the object inside its file ("/", "/observables/theta/value", ...).
  const std::string& name() const { return name_; }
  /// True if both are the same HDF5 object (e.g. reached through two hard links).
  bool is_same_object(const Object& other) const;

  void set_string_attr(std::string_view attr, std::string_view value);  ///< variable-length UTF-8
  void set_double_attr(std::string_view attr, double value);
  void set_int64_attr(std::string_view attr, std::int64_t value);
  void set_string_array_attr(std::string_view attr, std::span<const std::string> values);
  void set_double_array_attr(std::string_view attr, std::span<const double> values);
  void set_int64_array_attr(std::string_view attr, std::span<const std::int64_t> values);
  void set_int32_array_attr(std::string_view attr, std::span<const std::int32_t> values);

  bool has_attr(std::string_view attr) const;
  std::string string_attr(std::string_view attr) const;
  double double_attr(std::string_view attr) const;
  std::int64_t int64_attr(std::string_view attr) const;
  std::vector<std::string> string_array_attr(std::string_view attr) const;
  std::vector<double> double_array_attr(std::string_view attr) const;
  std::vector<std::int64_t> int64_array_attr(std::string_view attr) const;
  std::vector<std::int32_t> int32_array_attr(std::string_view attr) const;

 protected:
  Object() = default;
  Object(Handle handle, std::string file_path, std::string name)
      : handle_(std::move(handle)), file_path_(std::move(file_path)), name_(std::move(name)) {}
  /// Child path for error messages and for objects opened from this one.
  std::string child_name(std::string_view relative) const;

  Handle handle_;
  std::string file_path_;
  std::string name_;
};

/// A dataset. Extendible ones (create_extendible_dataset) grow along their first dimension.
class Dataset : public Object {
 public:
  Dataset() = default;
  std::vector<std::int64_t> shape() const;
  /// Appends whole rows: values.size() must be a multiple of the row width (1 for 1-D datasets).
  void append_rows(std::span<const double> values);
  void append_rows(std::span<const std::int64_t> values);
  void append_rows(std::span<const std::int8_t> values);  ///< int8_enum datasets
  /// The whole dataset, row-major, converted to the requested type (read_int64s also reads the
  /// values of an int8_enum dataset).
  std::vector<double> read_doubles() const;
  std::vector<std::int64_t> read_int64s() const;
  /// Member names of an int8_enum dataset ordered by value 0, 1, ...; empty for other types.
  std::vector<std::string> enum_names() const;
  void close();

 private:
  friend class Group;
  Dataset(Handle handle, std::string file_path, std::string name)
      : Object(std::move(handle), std::move(file_path), std::move(name)) {}
  void append_rows(Id memory_type, const void* values, std::size_t count);
  void read_all(Id memory_type, void* out, std::size_t count) const;
  std::size_t element_count() const;
};

/// A group (or, through File, the root group). Paths may be relative to it or absolute.
class Group : public Object {
 public:
  Group() = default;
  /// Creates the group and any missing intermediate groups.
  Group create_group(std::string_view path);
  Group open_group(std::string_view path) const;
  /// True if every link along `path` exists.
  bool contains(std::string_view path) const;
  /// Names of the links directly in this group, in name order.
  std::vector<std::string> children() const;

  /// A chunked dataset with shape [0] (width 0) or [0, width], unlimited in its first dimension,
  /// compressed with shuffle + deflate, chunks of `chunk_rows` rows. int8_enum needs
  /// `enum_names` (member i has value i); other types take none.
  Dataset create_extendible_dataset(std::string_view path, ElementType type, std::int64_t width,
                                    std::int64_t chunk_rows,
                                    std::span<const std::string> enum_names = {});
  /// A fixed 1-D float64 dataset holding `values` (intermediate groups are created).
  Dataset write_dataset(std::string_view path, std::span<const double> values);
  /// A fixed float64 dataset of the given shape holding `values` row-major (e.g. [n, d]).
  Dataset write_dataset(std::string_view path, std::span<const double> values,
                        std::span<const std::int64_t> shape);
  Dataset open_dataset(std::string_view path) const;
  /// A second name `link_path` for the existing object at `target_path` (H5Lcreate_hard).
  void create_hard_link(std::string_view target_path, std::string_view link_path);

 protected:
  Group(Handle handle, std::string file_path, std::string name)
      : Object(std::move(handle), std::move(file_path), std::move(name)) {}
};

/// On-disk format: v110 is required for SWMR and unreadable by HDF5 1.8 tools; earliest is not.
enum class FileFormat { earliest, v110 };
/// swmr_read: read-only with SWMR reading, for a file a killed SWMR writer left open.
enum class Access { read_only, read_write, swmr_read };

/// An open HDF5 file; as a Group it is the root group "/".
class File : public Group {
 public:
  File() = default;
  /// Creates (truncating) `path`. Errors name the file `label` when given (e.g. the name a file
  /// created under a temporary name will have).
  static File create(const std::string& path, FileFormat format, const std::string& label = "");
  static File open(const std::string& path, Access access, const std::string& label = "");

  /// Enters SWMR-write mode: no new objects or attributes afterwards, datasets may still grow.
  void start_swmr_write();
  /// Writes all cached data and metadata to disk.
  void flush();
  /// Closes the file, reporting errors (the destructor closes silently). Close the file's
  /// datasets and groups first: HDF5 keeps the file open while any of them is open.
  void close();

 private:
  File(Handle handle, const std::string& path) : Group(std::move(handle), path, "/") {}
};

}  // namespace gfsim::h5
