// The RAII layer over the HDF5 C API declared in hdf5_file.hpp.
#include "gfsim/hdf5_file.hpp"

#include <hdf5.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <type_traits>

#include "gfsim/errors.hpp"

namespace gfsim::h5 {

static_assert(std::is_same_v<Id, hid_t>, "gfsim::h5::Id must be HDF5's hid_t");

namespace {

// Level 4 keeps most of zlib's gain on shuffled float64 data at a fraction of level 9's cost.
constexpr unsigned kDeflateLevel = 4;

// HDF5 prints its whole error stack to stderr by default; this layer reports errors itself.
// Called on every file open: the setting is per thread in thread-safe HDF5 builds.
void silence_hdf5_error_printing() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// HDF5's innermost (most specific) error description, e.g. "... errno = 2, error message = 'No
// such file or directory'"; clears the error stack.
std::string take_hdf5_error_detail() {
  std::string detail;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned, const H5E_error2_t* error, void* out) -> herr_t {
        auto& text = *static_cast<std::string*>(out);
        if (text.empty() && error->desc != nullptr) text = error->desc;
        return 0;
      },
      &detail);
  H5Eclear2(H5E_DEFAULT);
  // A failed system call is described as "..., errno = 28, error message = 'No space left on
  // device', buf = ..." over several lines: keep the system's message, on one line.
  const std::string marker = "error message = '";
  if (const auto begin = detail.find(marker); begin != std::string::npos) {
    const auto end = detail.find('\'', begin + marker.size());
    if (end != std::string::npos) return detail.substr(begin + marker.size(), end - begin - marker.size());
  }
  std::replace(detail.begin(), detail.end(), '\n', ' ');
  return detail;
}

[[noreturn]] void throw_io_error(const std::string& file_path, std::string_view operation,
                                 std::string_view object, const std::string& detail) {
  std::string message = "HDF5 file '" + file_path + "': cannot " + std::string(operation);
  if (!object.empty()) message += " '" + std::string(object) + "'";
  if (!detail.empty()) message += ": " + detail;
  throw IoError(message);
}

/// Returns `result` unless it signals an HDF5 failure (negative), which becomes an IoError.
std::int64_t checked(std::int64_t result, const std::string& file_path, std::string_view operation,
                     std::string_view object) {
  if (result < 0) throw_io_error(file_path, operation, object, take_hdf5_error_detail());
  return result;
}

Handle variable_length_utf8_string_type() {
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

Handle scalar_space() { return Handle(H5Screate(H5S_SCALAR)); }

Handle vector_space(std::size_t size) {
  const hsize_t dims[1] = {size};
  return Handle(H5Screate_simple(1, dims, nullptr));
}

// Link creation that also creates missing intermediate groups ("a/b/c" without "a/b").
Handle link_creation_with_intermediate_groups() {
  Handle properties(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(properties.get(), 1);
  return properties;
}

std::string attribute_label(const Object& object, std::string_view attr) {
  return object.name() + "@" + std::string(attr);
}

void create_attribute(const Object& object, std::string_view attr, hid_t type, hid_t memory_type,
                      const Handle& space, const void* data) {
  const std::string label = attribute_label(object, attr);
  Handle attribute(checked(H5Acreate2(object.id(), std::string(attr).c_str(), type, space.get(),
                                      H5P_DEFAULT, H5P_DEFAULT),
                           object.file_path(), "create attribute", label));
  if (data != nullptr) {
    checked(H5Awrite(attribute.get(), memory_type, data), object.file_path(), "write attribute",
            label);
  }
}

Handle open_attribute(const Object& object, std::string_view attr) {
  return Handle(checked(H5Aopen(object.id(), std::string(attr).c_str(), H5P_DEFAULT),
                        object.file_path(), "open attribute", attribute_label(object, attr)));
}

std::size_t element_count_of_space(hid_t space, const Object& object, std::string_view what) {
  return static_cast<std::size_t>(
      checked(H5Sget_simple_extent_npoints(space), object.file_path(), "get the size of", what));
}

template <class T>
std::vector<T> read_numeric_attribute(const Object& object, std::string_view attr,
                                      hid_t memory_type) {
  const Handle attribute = open_attribute(object, attr);
  const std::string label = attribute_label(object, attr);
  const Handle space(checked(H5Aget_space(attribute.get()), object.file_path(),
                             "get the dataspace of attribute", label));
  std::vector<T> values(element_count_of_space(space.get(), object, label));
  if (!values.empty()) {
    checked(H5Aread(attribute.get(), memory_type, values.data()), object.file_path(),
            "read attribute", label);
  }
  return values;
}

template <class T>
T read_single_value(std::vector<T> values, const Object& object, std::string_view attr) {
  if (values.size() != 1) {
    throw_io_error(object.file_path(), "read a single value from attribute",
                   attribute_label(object, attr),
                   "it holds " + std::to_string(values.size()) + " values");
  }
  return values.front();
}

}  // namespace

// ---- Handle

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    close();
    id_ = other.release();
  }
  return *this;
}

bool Handle::close() noexcept {
  if (id_ < 0) return true;
  const hid_t id = release();
  herr_t status = -1;
  switch (H5Iget_type(id)) {
    case H5I_FILE: status = H5Fclose(id); break;
    case H5I_GROUP: status = H5Gclose(id); break;
    case H5I_DATASET: status = H5Dclose(id); break;
    case H5I_DATASPACE: status = H5Sclose(id); break;
    case H5I_DATATYPE: status = H5Tclose(id); break;
    case H5I_ATTR: status = H5Aclose(id); break;
    case H5I_GENPROP_LST: status = H5Pclose(id); break;
    default: break;  // not a valid identifier (never opened, or HDF5 already shut down)
  }
  return status >= 0;
}

// ---- Object

std::string Object::child_name(std::string_view relative) const {
  if (relative.starts_with('/')) return std::string(relative);
  return (name_ == "/" ? "/" : name_ + "/") + std::string(relative);
}

bool Object::is_same_object(const Object& other) const {
  H5O_info_t mine{};
  H5O_info_t theirs{};
  checked(H5Oget_info2(id(), &mine, H5O_INFO_BASIC), file_path_, "get object info of", name_);
  checked(H5Oget_info2(other.id(), &theirs, H5O_INFO_BASIC), other.file_path_,
          "get object info of", other.name_);
  return mine.fileno == theirs.fileno && mine.addr == theirs.addr;
}

void Object::set_string_attr(std::string_view attr, std::string_view value) {
  const std::string text(value);
  const char* data = text.c_str();
  const Handle type = variable_length_utf8_string_type();
  create_attribute(*this, attr, type.get(), type.get(), scalar_space(), &data);
}

void Object::set_double_attr(std::string_view attr, double value) {
  create_attribute(*this, attr, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, scalar_space(), &value);
}

void Object::set_int64_attr(std::string_view attr, std::int64_t value) {
  create_attribute(*this, attr, H5T_STD_I64LE, H5T_NATIVE_INT64, scalar_space(), &value);
}

void Object::set_string_array_attr(std::string_view attr, std::span<const std::string> values) {
  std::vector<const char*> data;
  data.reserve(values.size());
  for (const auto& value : values) data.push_back(value.c_str());
  const Handle type = variable_length_utf8_string_type();
  create_attribute(*this, attr, type.get(), type.get(), vector_space(values.size()),
                   data.empty() ? nullptr : data.data());
}

void Object::set_double_array_attr(std::string_view attr, std::span<const double> values) {
  create_attribute(*this, attr, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, vector_space(values.size()),
                   values.empty() ? nullptr : values.data());
}

void Object::set_int64_array_attr(std::string_view attr, std::span<const std::int64_t> values) {
  create_attribute(*this, attr, H5T_STD_I64LE, H5T_NATIVE_INT64, vector_space(values.size()),
                   values.empty() ? nullptr : values.data());
}

void Object::set_int32_array_attr(std::string_view attr, std::span<const std::int32_t> values) {
  create_attribute(*this, attr, H5T_STD_I32LE, H5T_NATIVE_INT32, vector_space(values.size()),
                   values.empty() ? nullptr : values.data());
}

bool Object::has_attr(std::string_view attr) const {
  return checked(H5Aexists(id(), std::string(attr).c_str()), file_path_, "look up attribute",
                 attribute_label(*this, attr)) > 0;
}

std::string Object::string_attr(std::string_view attr) const {
  return read_single_value(string_array_attr(attr), *this, attr);
}

double Object::double_attr(std::string_view attr) const {
  return read_single_value(double_array_attr(attr), *this, attr);
}

std::int64_t Object::int64_attr(std::string_view attr) const {
  return read_single_value(int64_array_attr(attr), *this, attr);
}

std::vector<std::string> Object::string_array_attr(std::string_view attr) const {
  const Handle attribute = open_attribute(*this, attr);
  const std::string label = attribute_label(*this, attr);
  const Handle stored_type(
      checked(H5Aget_type(attribute.get()), file_path_, "get the type of attribute", label));
  if (H5Tis_variable_str(stored_type.get()) <= 0) {
    throw_io_error(file_path_, "read attribute", label, "not a variable-length string");
  }
  // Same character set as stored: HDF5 refuses to convert between ASCII and UTF-8.
  const Handle memory_type(checked(H5Tget_native_type(stored_type.get(), H5T_DIR_DEFAULT),
                                   file_path_, "get the memory type of attribute", label));
  const Handle space(checked(H5Aget_space(attribute.get()), file_path_,
                             "get the dataspace of attribute", label));
  std::vector<char*> raw(element_count_of_space(space.get(), *this, label), nullptr);
  if (raw.empty()) return {};
  checked(H5Aread(attribute.get(), memory_type.get(), raw.data()), file_path_, "read attribute",
          label);
  std::vector<std::string> values;
  values.reserve(raw.size());
  for (const char* text : raw) values.emplace_back(text != nullptr ? text : "");
  H5Dvlen_reclaim(memory_type.get(), space.get(), H5P_DEFAULT, raw.data());
  return values;
}

std::vector<double> Object::double_array_attr(std::string_view attr) const {
  return read_numeric_attribute<double>(*this, attr, H5T_NATIVE_DOUBLE);
}

std::vector<std::int64_t> Object::int64_array_attr(std::string_view attr) const {
  return read_numeric_attribute<std::int64_t>(*this, attr, H5T_NATIVE_INT64);
}

std::vector<std::int32_t> Object::int32_array_attr(std::string_view attr) const {
  return read_numeric_attribute<std::int32_t>(*this, attr, H5T_NATIVE_INT32);
}

// ---- Dataset

std::vector<std::int64_t> Dataset::shape() const {
  const Handle space(checked(H5Dget_space(id()), file_path_, "get the dataspace of", name_));
  const int rank = static_cast<int>(
      checked(H5Sget_simple_extent_ndims(space.get()), file_path_, "get the rank of", name_));
  std::vector<hsize_t> dims(rank);
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return {dims.begin(), dims.end()};
}

void Dataset::append_rows(std::span<const double> values) {
  append_rows(H5T_NATIVE_DOUBLE, values.data(), values.size());
}

void Dataset::append_rows(std::span<const std::int64_t> values) {
  append_rows(H5T_NATIVE_INT64, values.data(), values.size());
}

void Dataset::append_rows(std::span<const std::int8_t> values) {
  // The enum's own native type: HDF5 converts enums only to enums, never from integers.
  const Handle stored(checked(H5Dget_type(id()), file_path_, "get the type of", name_));
  const Handle memory(checked(H5Tget_native_type(stored.get(), H5T_DIR_DEFAULT), file_path_,
                              "get the memory type of", name_));
  append_rows(memory.get(), values.data(), values.size());
}

void Dataset::append_rows(Id memory_type, const void* values, std::size_t count) {
  if (count == 0) return;
  std::vector<hsize_t> dims;
  for (const std::int64_t extent : shape()) dims.push_back(static_cast<hsize_t>(extent));
  hsize_t row_width = 1;
  for (std::size_t axis = 1; axis < dims.size(); ++axis) row_width *= dims[axis];
  if (dims.empty() || count % row_width != 0) {
    throw std::invalid_argument("append_rows to " + name_ + " in " + file_path_ + ": " +
                                std::to_string(count) + " values are not whole rows of " +
                                std::to_string(row_width));
  }
  const hsize_t first_new_row = dims[0];
  std::vector<hsize_t> start(dims.size(), 0);
  std::vector<hsize_t> block = dims;
  start[0] = first_new_row;
  block[0] = count / row_width;
  dims[0] += block[0];
  checked(H5Dset_extent(id(), dims.data()), file_path_, "extend", name_);

  const Handle file_space(checked(H5Dget_space(id()), file_path_, "get the dataspace of", name_));
  checked(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr,
                              block.data(), nullptr),
          file_path_, "select new rows of", name_);
  const Handle memory_space = vector_space(count);
  checked(H5Dwrite(id(), memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, values),
          file_path_, "write rows to", name_);
}

std::size_t Dataset::element_count() const {
  // A damaged file may declare extents whose product overflows: a wrapped count would size the
  // buffer H5Dread then overruns.
  std::size_t count = 1;
  for (const std::int64_t extent : shape()) {
    const auto size = static_cast<std::size_t>(extent);
    if (size != 0 && count > std::numeric_limits<std::size_t>::max() / 8 / size)
      throw_io_error(file_path_, "read", name_, "its shape holds more values than memory can address");
    count *= size;
  }
  return count;
}

void Dataset::read_all(Id memory_type, void* out, std::size_t count) const {
  if (count == 0) return;
  checked(H5Dread(id(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, out), file_path_, "read",
          name_);
}

std::vector<double> Dataset::read_doubles() const {
  std::vector<double> values(element_count());
  read_all(H5T_NATIVE_DOUBLE, values.data(), values.size());
  return values;
}

std::vector<std::int64_t> Dataset::read_int64s() const {
  const Handle stored(checked(H5Dget_type(id()), file_path_, "get the type of", name_));
  if (H5Tget_class(stored.get()) == H5T_ENUM) {
    const Handle memory(checked(H5Tget_native_type(stored.get(), H5T_DIR_DEFAULT), file_path_,
                                "get the memory type of", name_));
    if (H5Tget_size(memory.get()) != 1) {
      throw_io_error(file_path_, "read", name_, "an enum dataset not based on int8");
    }
    std::vector<std::int8_t> small(element_count());
    read_all(memory.get(), small.data(), small.size());
    return {small.begin(), small.end()};
  }
  std::vector<std::int64_t> values(element_count());
  read_all(H5T_NATIVE_INT64, values.data(), values.size());
  return values;
}

std::vector<std::string> Dataset::enum_names() const {
  const Handle stored(checked(H5Dget_type(id()), file_path_, "get the type of", name_));
  if (H5Tget_class(stored.get()) != H5T_ENUM) return {};
  // H5Tget_member_value writes one value of the enum's base type: only int8 fits `value` below.
  if (H5Tget_size(stored.get()) != 1) throw_io_error(file_path_, "read", name_, "an enum dataset not based on int8");
  const int members = static_cast<int>(
      checked(H5Tget_nmembers(stored.get()), file_path_, "count the enum members of", name_));
  std::vector<std::string> names(static_cast<std::size_t>(members));
  for (int i = 0; i < members; ++i) {
    std::int8_t value = 0;
    checked(H5Tget_member_value(stored.get(), static_cast<unsigned>(i), &value), file_path_,
            "read an enum member of", name_);
    char* text = H5Tget_member_name(stored.get(), static_cast<unsigned>(i));
    if (text == nullptr || value < 0 || value >= members) {
      if (text != nullptr) H5free_memory(text);
      throw_io_error(file_path_, "read", name_, "enum values are not 0..members-1");
    }
    names[static_cast<std::size_t>(value)] = text;
    H5free_memory(text);
  }
  return names;
}

void Dataset::close() {
  if (!handle_.close()) throw_io_error(file_path_, "close", name_, take_hdf5_error_detail());
}

// ---- Group

Group Group::create_group(std::string_view path) {
  const std::string name = child_name(path);
  const Handle link_properties = link_creation_with_intermediate_groups();
  Handle group(checked(H5Gcreate2(id(), std::string(path).c_str(), link_properties.get(),
                                  H5P_DEFAULT, H5P_DEFAULT),
                       file_path_, "create group", name));
  return Group(std::move(group), file_path_, name);
}

Group Group::open_group(std::string_view path) const {
  const std::string name = child_name(path);
  Handle group(checked(H5Gopen2(id(), std::string(path).c_str(), H5P_DEFAULT), file_path_,
                       "open group", name));
  return Group(std::move(group), file_path_, name);
}

std::vector<std::string> Group::children() const {
  std::vector<std::string> names;
  auto collect = [](hid_t, const char* name, const H5L_info_t*, void* out) -> herr_t {
    static_cast<std::vector<std::string>*>(out)->emplace_back(name);
    return 0;
  };
  checked(H5Literate(id(), H5_INDEX_NAME, H5_ITER_INC, nullptr, collect, &names), file_path_, "list", name_);
  return names;
}

bool Group::contains(std::string_view path) const {
  // H5Lexists fails rather than answering "no" when an intermediate link is missing.
  std::string prefix = path.starts_with('/') ? "/" : "";
  std::size_t begin = 0;
  while (begin < path.size()) {
    const std::size_t end = std::min(path.find('/', begin), path.size());
    if (end > begin) {
      if (!prefix.empty() && prefix.back() != '/') prefix += '/';
      prefix += path.substr(begin, end - begin);
      if (checked(H5Lexists(id(), prefix.c_str(), H5P_DEFAULT), file_path_, "look up",
                  child_name(prefix)) <= 0) {
        return false;
      }
    }
    begin = end + 1;
  }
  return true;
}

Dataset Group::create_extendible_dataset(std::string_view path, ElementType type,
                                         std::int64_t width, std::int64_t chunk_rows,
                                         std::span<const std::string> enum_names) {
  const std::string name = child_name(path);
  if (width < 0 || chunk_rows < 1 || (type == ElementType::int8_enum) == enum_names.empty() ||
      enum_names.size() > 127) {
    throw std::invalid_argument("create_extendible_dataset " + name + ": width " +
                                std::to_string(width) + ", chunk_rows " +
                                std::to_string(chunk_rows) + ", " +
                                std::to_string(enum_names.size()) + " enum names");
  }
  const int rank = width > 0 ? 2 : 1;
  const hsize_t dims[2] = {0, static_cast<hsize_t>(width)};
  const hsize_t max_dims[2] = {H5S_UNLIMITED, static_cast<hsize_t>(width)};
  const hsize_t chunk[2] = {static_cast<hsize_t>(chunk_rows), static_cast<hsize_t>(width)};
  const Handle space(checked(H5Screate_simple(rank, dims, max_dims), file_path_,
                             "create the dataspace of", name));

  const Handle creation(H5Pcreate(H5P_DATASET_CREATE));
  checked(H5Pset_chunk(creation.get(), rank, chunk), file_path_, "set the chunks of", name);
  checked(H5Pset_shuffle(creation.get()), file_path_, "set the shuffle filter of", name);
  checked(H5Pset_deflate(creation.get(), kDeflateLevel), file_path_, "set the deflate filter of",
          name);
  hid_t stored_type = H5T_STD_I64LE;
  Handle enum_type;
  if (type == ElementType::int8_enum) {
    enum_type = Handle(checked(H5Tenum_create(H5T_STD_I8LE), file_path_, "create the enum type of",
                               name));
    for (std::size_t i = 0; i < enum_names.size(); ++i) {
      const std::int8_t value = static_cast<std::int8_t>(i);
      // H5Tenum_insert reads the value in the enum's base type (little-endian int8: one byte).
      checked(H5Tenum_insert(enum_type.get(), enum_names[i].c_str(), &value), file_path_,
              "name enum member '" + enum_names[i] + "' of", name);
    }
    stored_type = enum_type.get();
  } else if (type == ElementType::float64) {
    stored_type = H5T_IEEE_F64LE;
    // Rows allocated but never written (a run killed mid-write) read as NaN, not as 0.
    const double not_written = std::numeric_limits<double>::quiet_NaN();
    checked(H5Pset_fill_value(creation.get(), H5T_NATIVE_DOUBLE, &not_written), file_path_,
            "set the fill value of", name);
  }
  const Handle link_properties = link_creation_with_intermediate_groups();
  Handle dataset(checked(H5Dcreate2(id(), std::string(path).c_str(), stored_type, space.get(),
                                    link_properties.get(), creation.get(), H5P_DEFAULT),
                         file_path_, "create dataset", name));
  return Dataset(std::move(dataset), file_path_, name);
}

Dataset Group::write_dataset(std::string_view path, std::span<const double> values) {
  const std::int64_t shape[1] = {static_cast<std::int64_t>(values.size())};
  return write_dataset(path, values, shape);
}

Dataset Group::write_dataset(std::string_view path, std::span<const double> values,
                             std::span<const std::int64_t> shape) {
  const std::string name = child_name(path);
  std::vector<hsize_t> dims;
  std::size_t count = 1;
  for (const std::int64_t extent : shape) {
    if (extent < 0) throw std::invalid_argument("write_dataset " + name + ": negative extent");
    dims.push_back(static_cast<hsize_t>(extent));
    count *= static_cast<std::size_t>(extent);
  }
  if (dims.empty() || count != values.size()) {
    throw std::invalid_argument("write_dataset " + name + ": " + std::to_string(values.size()) +
                                " values do not fill the shape given");
  }
  const Handle space(checked(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                             file_path_, "create the dataspace of", name));
  const Handle link_properties = link_creation_with_intermediate_groups();
  Handle dataset(checked(H5Dcreate2(id(), std::string(path).c_str(), H5T_IEEE_F64LE, space.get(),
                                    link_properties.get(), H5P_DEFAULT, H5P_DEFAULT),
                         file_path_, "create dataset", name));
  if (!values.empty()) {
    checked(H5Dwrite(dataset.get(), H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                     values.data()),
            file_path_, "write", name);
  }
  return Dataset(std::move(dataset), file_path_, name);
}

Dataset Group::open_dataset(std::string_view path) const {
  const std::string name = child_name(path);
  Handle dataset(checked(H5Dopen2(id(), std::string(path).c_str(), H5P_DEFAULT), file_path_,
                         "open dataset", name));
  return Dataset(std::move(dataset), file_path_, name);
}

void Group::create_hard_link(std::string_view target_path, std::string_view link_path) {
  const Handle link_properties = link_creation_with_intermediate_groups();
  checked(H5Lcreate_hard(id(), std::string(target_path).c_str(), id(),
                         std::string(link_path).c_str(), link_properties.get(), H5P_DEFAULT),
          file_path_, "create a hard link to " + child_name(target_path) + " at",
          child_name(link_path));
}

// ---- File

File File::create(const std::string& path, FileFormat format, const std::string& label) {
  silence_hdf5_error_printing();
  const Handle access(H5Pcreate(H5P_FILE_ACCESS));
  if (format == FileFormat::v110) {
    // Both bounds v110: SWMR needs >= v110, and the file stays readable by HDF5 1.10 tools.
    checked(H5Pset_libver_bounds(access.get(), H5F_LIBVER_V110, H5F_LIBVER_V110), path,
            "set the library version bounds for", path);
  }
  Handle file(checked(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, access.get()), path,
                      "create file", ""));
  return File(std::move(file), label.empty() ? path : label);
}

File File::open(const std::string& path, Access access, const std::string& label) {
  silence_hdf5_error_printing();
  const unsigned flags = access == Access::read_write  ? H5F_ACC_RDWR
                         : access == Access::swmr_read ? H5F_ACC_RDONLY | H5F_ACC_SWMR_READ
                                                       : H5F_ACC_RDONLY;
  Handle file(checked(H5Fopen(path.c_str(), flags, H5P_DEFAULT), path, "open file", ""));
  return File(std::move(file), label.empty() ? path : label);
}

void File::start_swmr_write() {
  checked(H5Fstart_swmr_write(id()), file_path_, "start SWMR writing", "");
}

void File::flush() { checked(H5Fflush(id(), H5F_SCOPE_GLOBAL), file_path_, "flush", ""); }

void File::close() {
  if (!handle_.close()) throw_io_error(file_path_, "close file", "", take_hdf5_error_detail());
}

}  // namespace gfsim::h5
