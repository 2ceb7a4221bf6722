// hdf5.cpp — see hdf5.h. Uses the HDF5 C API; each id is closed by a small RAII guard so that
// an exception on any path leaks nothing.
#include "loaders/hdf5.h"

#include <hdf5.h>  // H5F*, H5D*, H5A*, H5S*, H5T*, H5G*, H5L*, H5O*

#include <signal.h>  // sigaction, sigaltstack (the crash guard)
#include <unistd.h>  // write, _exit

#include <algorithm>   // std::sort
#include <atomic>      // std::atomic (the crash guard's message)
#include <cstdio>      // std::remove, std::rename
#include <cstring>     // std::strerror, std::strlen
#include <functional>  // std::function
#include <memory>      // std::unique_ptr (the crash guard's stack)

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"  // InputError

namespace lcam::h5 {
namespace {

// Closes an HDF5 id with the given function on scope exit.
class Id {
 public:
  Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Id() {
    if (id_ >= 0) close_(id_);
  }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

void quiet_hdf5() {
  static const bool once = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)once;
}

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw InputError(fmt::format("{}: {}", path, what));
}

// A damaged file can crash libhdf5 1.10 itself (a read through a corrupt object header; found
// by tools/fuzz.sh), which no check of lcam's can prevent. While a Reader is inside libhdf5, a
// SIGSEGV or SIGBUS therefore ends the process with lcam's one-line error naming the file and
// exit status 2, instead of a bare "Segmentation fault"; any other fault goes to the handler
// that was there before (the default one, or a sanitizer's). The message is formatted before
// the call, so that the handler only writes it (async-signal-safe).
std::atomic<const char*> g_crash_message{nullptr};
struct sigaction g_previous[2];  // SIGSEGV, SIGBUS

void on_fault(int sig, siginfo_t* info, void*) {
  if (const char* m = g_crash_message.load()) {
    ssize_t ignored = write(2, m, std::strlen(m));
    (void)ignored;
    _exit(2);
  }
  // Not ours: put the previous handler back and return; the faulting instruction runs again
  // and faults into it. A signal sent rather than raised by a fault is sent again.
  sigaction(sig, &g_previous[sig == SIGBUS ? 1 : 0], nullptr);
  if (info && info->si_code <= 0) raise(sig);
}

// Puts on_fault first for SIGSEGV and SIGBUS unless it already is (a test framework or a
// sanitizer may have installed a handler of its own since), keeping the one it displaces.
void install_crash_guard() {
  // Its own stack, so that a fault from a runaway recursion inside libhdf5 is reported too;
  // a thread that has one already (a sanitizer's, a test framework's) keeps it.
  thread_local std::unique_ptr<char[]> stack;
  stack_t current{};
  if (!stack && sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
    constexpr size_t kBytes = size_t{1} << 18;
    stack = std::make_unique<char[]>(kBytes);
    stack_t ss{};
    ss.ss_sp = stack.get();
    ss.ss_size = kBytes;
    sigaltstack(&ss, nullptr);
  }
  for (int i = 0; i < 2; ++i) {
    const int sig = i ? SIGBUS : SIGSEGV;
    struct sigaction now{};
    sigaction(sig, nullptr, &now);
    if ((now.sa_flags & SA_SIGINFO) && now.sa_sigaction == on_fault) continue;
    struct sigaction sa{};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, &g_previous[i]);
  }
}

}  // namespace

// Marks the scope of libhdf5 calls for one Reader (nested scopes keep the outer message).
class Reader::InLibrary {
 public:
  explicit InLibrary(const Reader& r) : previous_(g_crash_message.exchange(r.crash_message_.c_str())) {
    if (!previous_) install_crash_guard();
  }
  ~InLibrary() { g_crash_message.store(previous_); }
  InLibrary(const InLibrary&) = delete;
  InLibrary& operator=(const InLibrary&) = delete;

 private:
  const char* previous_;
};

namespace {

std::string type_name(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return size == 4 ? "float32" : size == 8 ? "float64" : fmt::format("float{}", size * 8);
  if (cls == H5T_INTEGER) {
    const bool sign = H5Tget_sign(type) == H5T_SGN_2;
    return fmt::format("{}int{}", sign ? "" : "u", size * 8);
  }
  if (cls == H5T_STRING) return "string";
  return "other";
}

std::vector<int64_t> space_shape(hid_t space) {
  const int nd = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> dims(nd > 0 ? nd : 0);
  if (nd > 0) H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

struct VisitCtx {
  std::vector<DatasetInfo>* out;
  hid_t file;
};

herr_t visit_cb(hid_t obj, const char* name, const H5O_info_t* info, void* data) {
  auto* ctx = static_cast<VisitCtx*>(data);
  if (info->type != H5O_TYPE_DATASET) return 0;
  Id ds(H5Dopen2(obj, name, H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) return -1;
  Id space(H5Dget_space(ds.get()), H5Sclose);
  Id type(H5Dget_type(ds.get()), H5Tclose);
  if (!space.ok() || !type.ok()) return -1;
  ctx->out->push_back({name, space_shape(space.get()), type_name(type.get())});
  return 0;
}

}  // namespace

Reader::Reader(const std::string& path)
    : path_(path), crash_message_("lcam: error: " + path + ": damaged HDF5 file (the HDF5 library crashed reading it)\n") {
  quiet_hdf5();
  if (FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
  } else {
    fail(path, fmt::format("cannot open ({})", std::strerror(errno)));
  }
  const InLibrary guard(*this);
  if (H5Fis_hdf5(path.c_str()) <= 0) fail(path, "not an HDF5 file (or truncated)");
  file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file_ < 0) fail(path, "cannot open as HDF5 (corrupt or truncated?)");
}

Reader::~Reader() {
  if (file_ < 0) return;
  const InLibrary guard(*this);
  H5Fclose(file_);
}

Reader::Reader(Reader&& o) noexcept
    : path_(std::move(o.path_)), crash_message_(std::move(o.crash_message_)), file_(o.file_) {
  o.file_ = -1;
}

std::vector<DatasetInfo> Reader::datasets() const {
  const InLibrary guard(*this);
  std::vector<DatasetInfo> out;
  VisitCtx ctx{&out, file_};
  if (H5Ovisit2(file_, H5_INDEX_NAME, H5_ITER_INC, visit_cb, &ctx, H5O_INFO_BASIC) < 0)
    fail(path_, "cannot list datasets (corrupt or truncated?)");
  std::sort(out.begin(), out.end(), [](const DatasetInfo& a, const DatasetInfo& b) { return a.name < b.name; });
  return out;
}

bool Reader::has(const std::string& name) const {
  const InLibrary guard(*this);
  // Check each path component so that a missing group is not an error.
  size_t pos = 0;
  while (true) {
    size_t next = name.find('/', pos);
    std::string prefix = name.substr(0, next);
    if (H5Lexists(file_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (next == std::string::npos) break;
    pos = next + 1;
  }
  return H5Oexists_by_name(file_, name.c_str(), H5P_DEFAULT) > 0;
}

namespace {
Tensor read_as(const std::string& path, hid_t file, const std::string& name, DType dt,
               bool allow_f64, bool any_int) {
  Id ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) fail(path, fmt::format("missing dataset '{}'", name));
  Id space(H5Dget_space(ds.get()), H5Sclose);
  Id type(H5Dget_type(ds.get()), H5Tclose);
  if (!space.ok() || !type.ok()) fail(path, fmt::format("dataset '{}': unreadable header", name));
  const std::string tn = type_name(type.get());
  if (dt == DType::F32) {
    if (tn != "float32" && !(allow_f64 && tn == "float64"))
      fail(path, fmt::format("dataset '{}' is {}, expected float32", name, tn));
  } else if (!(any_int && H5Tget_class(type.get()) == H5T_INTEGER)) {
    fail(path, fmt::format("dataset '{}' is {}, expected an integer type", name, tn));
  }
  // A damaged file may declare a shape far larger than the data it holds: its element count
  // must not overflow, and the bytes stored must cover it (compressed: at deflate's best ratio,
  // about 1032:1), before anything is allocated for it.
  const std::vector<int64_t> shape = space_shape(space.get());
  uint64_t numel = 1;
  for (int64_t d : shape)
    if (d < 0 || (d > 0 && numel > (uint64_t{1} << 40) / static_cast<uint64_t>(d)))
      fail(path, fmt::format("dataset '{}': implausible shape", name));
    else
      numel *= static_cast<uint64_t>(d);
  Id dcpl(H5Dget_create_plist(ds.get()), H5Pclose);
  const uint64_t stored = H5Dget_storage_size(ds.get()), need = numel * H5Tget_size(type.get());
  const bool compressed = !dcpl.ok() || H5Pget_nfilters(dcpl.get()) > 0;
  if (compressed ? need / 1100 > stored + (1 << 20) : stored < need)
    fail(path, fmt::format("dataset '{}' holds {} bytes, its shape needs {} (file damaged?)", name, stored, need));
  Tensor t = Tensor::empty(shape, Device::CPU, dt);
  if (t.numel() == 0) return t;
  hid_t mem = dt == DType::F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32;
  if (H5Dread(ds.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()) < 0)
    fail(path, fmt::format("dataset '{}': read failed (file truncated or corrupt?)", name));
  return t;
}

// Opens attribute `name` of object `obj`; returns an invalid Id when absent.
hid_t open_attr(hid_t file, const std::string& obj, const std::string& name) {
  if (H5Aexists_by_name(file, obj.c_str(), name.c_str(), H5P_DEFAULT) <= 0) return -1;
  return H5Aopen_by_name(file, obj.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT);
}
}  // namespace

Tensor Reader::read(const std::string& name, bool allow_f64) const {
  const InLibrary guard(*this);
  return read_as(path_, file_, name, DType::F32, allow_f64, false);
}

Tensor Reader::read_i32(const std::string& name) const {
  const InLibrary guard(*this);
  return read_as(path_, file_, name, DType::I32, false, true);
}

std::optional<std::string> Reader::attr_string(const std::string& name, const std::string& obj) const {
  const InLibrary guard(*this);
  Id a(open_attr(file_, obj, name), H5Aclose);
  if (!a.ok()) return std::nullopt;
  Id type(H5Aget_type(a.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING)
    fail(path_, fmt::format("attribute '{}' is not a string", name));
  Id space(H5Aget_space(a.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    fail(path_, fmt::format("attribute '{}' is not a single string", name));
  if (H5Tis_variable_str(type.get()) > 0) {
    Id mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* s = nullptr;
    if (H5Aread(a.get(), mem.get(), &s) < 0) fail(path_, fmt::format("attribute '{}': read failed", name));
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  // Fixed-length: read the raw bytes (null-terminated or null/space-padded) and trim.
  const size_t size = H5Tget_size(type.get());
  if (size > (1 << 20)) fail(path_, fmt::format("attribute '{}' is a string of {} bytes (damaged file?)", name, size));
  std::string buf(size + 1, '\0');
  if (H5Aread(a.get(), type.get(), buf.data()) < 0) fail(path_, fmt::format("attribute '{}': read failed", name));
  buf.resize(std::strlen(buf.c_str()));
  while (!buf.empty() && buf.back() == ' ') buf.pop_back();
  return buf;
}

std::optional<std::vector<int64_t>> Reader::attr_ints(const std::string& name, const std::string& obj) const {
  const InLibrary guard(*this);
  Id a(open_attr(file_, obj, name), H5Aclose);
  if (!a.ok()) return std::nullopt;
  Id type(H5Aget_type(a.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_INTEGER)
    fail(path_, fmt::format("attribute '{}' is not an integer", name));
  Id space(H5Aget_space(a.get()), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n > (1 << 20)) fail(path_, fmt::format("attribute '{}' holds {} values (damaged file?)", name, n));
  std::vector<int64_t> v(n > 0 ? n : 0);
  if (n > 0 && H5Aread(a.get(), H5T_NATIVE_INT64, v.data()) < 0)
    fail(path_, fmt::format("attribute '{}': read failed", name));
  return v;
}

std::optional<int64_t> Reader::attr_int(const std::string& name, const std::string& obj) const {
  auto v = attr_ints(name, obj);
  if (!v) return std::nullopt;
  if (v->size() != 1) fail(path_, fmt::format("attribute '{}' should hold one integer", name));
  return (*v)[0];
}

std::optional<double> Reader::attr_double(const std::string& name, const std::string& obj) const {
  const InLibrary guard(*this);
  Id a(open_attr(file_, obj, name), H5Aclose);
  if (!a.ok()) return std::nullopt;
  Id type(H5Aget_type(a.get()), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) fail(path_, fmt::format("attribute '{}' is not a number", name));
  Id space(H5Aget_space(a.get()), H5Sclose);
  if (H5Sget_simple_extent_npoints(space.get()) != 1)
    fail(path_, fmt::format("attribute '{}' should hold one number", name));
  double v = 0;
  if (H5Aread(a.get(), H5T_NATIVE_DOUBLE, &v) < 0) fail(path_, fmt::format("attribute '{}': read failed", name));
  return v;
}

// ---- Writer ---------------------------------------------------------------------------------

Writer::Writer(const std::string& path) : path_(path), tmp_(temp_path_for(path)) {
  quiet_hdf5();
  file_ = H5Fcreate(tmp_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file_ < 0) fail(path_, "cannot create the file (missing folder or no permission?)");
}

Writer::~Writer() {
  if (file_ >= 0) H5Fclose(file_);
  if (!committed_) std::remove(tmp_.c_str());
}

void Writer::ensure_groups(const std::string& name) {
  size_t pos = 0;
  while ((pos = name.find('/', pos)) != std::string::npos) {
    std::string g = name.substr(0, pos++);
    if (g.empty() || H5Lexists(file_, g.c_str(), H5P_DEFAULT) > 0) continue;
    Id grp(H5Gcreate2(file_, g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!grp.ok()) fail(tmp_, fmt::format("cannot create group '{}'", g));
  }
}

void Writer::write(const std::string& name, const Tensor& t) {
  ensure_groups(name);
  Tensor host = t.device() == Device::CPU ? t : t.to(Device::CPU);
  std::vector<hsize_t> dims(host.shape().begin(), host.shape().end());
  Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  const bool f = host.dtype() == DType::F32;
  Id ds(H5Dcreate2(file_, name.c_str(), f ? H5T_IEEE_F32LE : H5T_STD_I32LE, space.get(), H5P_DEFAULT,
                   H5P_DEFAULT, H5P_DEFAULT),
        H5Dclose);
  if (!space.ok() || !ds.ok()) fail(tmp_, fmt::format("cannot create dataset '{}'", name));
  if (host.numel() > 0 &&
      H5Dwrite(ds.get(), f ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, host.raw()) < 0)
    fail(tmp_, fmt::format("cannot write dataset '{}' (disk full?)", name));
}

namespace {
void write_attr(const std::string& path, hid_t file, const std::string& obj, const std::string& name,
                hid_t file_type, hid_t mem_type, hid_t space, const void* data) {
  if (H5Aexists_by_name(file, obj.c_str(), name.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(file, obj.c_str(), name.c_str(), H5P_DEFAULT);
  Id a(H5Acreate_by_name(file, obj.c_str(), name.c_str(), file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
       H5Aclose);
  if (!a.ok() || H5Awrite(a.get(), mem_type, data) < 0)
    fail(path, fmt::format("cannot write attribute '{}'", name));
}
}  // namespace

void Writer::attr_string(const std::string& name, const std::string& value, const std::string& obj) {
  Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), value.size() + 1);
  H5Tset_strpad(type.get(), H5T_STR_NULLTERM);
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  write_attr(tmp_, file_, obj, name, type.get(), type.get(), space.get(), value.c_str());
}

void Writer::attr_int(const std::string& name, int64_t value, const std::string& obj) {
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  write_attr(tmp_, file_, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space.get(), &value);
}

void Writer::attr_double(const std::string& name, double value, const std::string& obj) {
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  write_attr(tmp_, file_, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space.get(), &value);
}

void Writer::attr_ints(const std::string& name, const std::vector<int64_t>& v, const std::string& obj) {
  hsize_t n = v.size();
  Id space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  write_attr(tmp_, file_, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space.get(), v.data());
}

void Writer::commit() {
  if (H5Fclose(file_) < 0) {
    file_ = -1;
    fail(tmp_, "cannot finish writing (disk full?)");
  }
  file_ = -1;
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail(path_, fmt::format("cannot rename {} into place ({})", tmp_, std::strerror(errno)));
  committed_ = true;
}

namespace detail {
void fault_inside_library(const Reader& r) {
  const Reader::InLibrary guard(r);
  raise(SIGSEGV);
}
}  // namespace detail

}  // namespace lcam::h5
