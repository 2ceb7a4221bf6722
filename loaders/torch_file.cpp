// torch_file.cpp — see torch_file.h. Three parts: file access (pread, a buffered cursor, the
// zip central directory), a pickle interpreter that builds values and never calls anything,
// and the Reader that flattens the unpickled object and reads tensors from their storages.
#include "loaders/torch_file.h"

#include <fcntl.h>     // open
#include <sys/stat.h>  // fstat
#include <unistd.h>    // pread, close

#include <fmt/format.h>  // fmt::format

#include <algorithm>      // std::min
#include <cerrno>         // errno
#include <cmath>          // std::ldexp
#include <cstring>        // std::memcpy, std::strerror
#include <functional>     // std::function
#include <map>            // std::map
#include <unordered_map>  // std::unordered_map

#include "engine/common.h"  // InputError

namespace lcam::pth {
namespace {

// ---- file access -------------------------------------------------------------------------

class File {
 public:
  explicit File(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw InputError(fmt::format("{}: cannot open ({})", path, std::strerror(errno)));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw InputError(fmt::format("{}: not a regular file", path));
    }
    size_ = static_cast<int64_t>(st.st_size);
  }
  ~File() { ::close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  int64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  void read(int64_t off, void* dst, int64_t n, const std::string& what) const {
    if (off < 0 || n < 0 || off > size_ || n > size_ - off)
      throw InputError(fmt::format("{}: truncated: {} needs {} bytes at offset {}, the file has {}", path_, what, n,
                                   off, size_));
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t r = ::pread(fd_, p, static_cast<size_t>(std::min<int64_t>(n, int64_t{1} << 30)), off);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw InputError(fmt::format("{}: read error at offset {} ({})", path_, off, std::strerror(errno)));
      p += r;
      off += r;
      n -= r;
    }
  }
  std::string bytes(int64_t off, int64_t n, const std::string& what) const {
    std::string s(static_cast<size_t>(n), '\0');
    read(off, s.data(), n, what);
    return s;
  }

 private:
  std::string path_;
  int fd_ = -1;
  int64_t size_ = 0;
};

uint64_t le(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// Sequential reads of [begin, end) of a file through a 64 KiB buffer: the pickle stream.
class Cursor {
 public:
  Cursor(const File& f, int64_t begin, int64_t end, std::string what)
      : f_(f), pos_(begin), end_(end), what_(std::move(what)) {}
  int64_t pos() const { return pos_ - static_cast<int64_t>(buf_.size() - at_); }
  const std::string& what() const { return what_; }
  const std::string& path() const { return f_.path(); }
  unsigned char u8() {
    if (at_ == buf_.size()) fill(1);
    return static_cast<unsigned char>(buf_[at_++]);
  }
  uint64_t uint(int n) { return le(take(n).data(), n); }
  std::string take(int64_t n) {
    if (n < 0 || n > end_ - pos())
      throw InputError(fmt::format("{}: truncated {}: {} bytes wanted at offset {}, {} left", f_.path(), what_, n,
                                   pos(), end_ - pos()));
    std::string s;
    s.reserve(static_cast<size_t>(n));
    while (static_cast<int64_t>(s.size()) < n) {
      if (at_ == buf_.size()) fill(1);
      const size_t k = std::min(buf_.size() - at_, static_cast<size_t>(n) - s.size());
      s.append(buf_, at_, k);
      at_ += k;
    }
    return s;
  }
  std::string line() {  // up to '\n', which is consumed and dropped
    std::string s;
    for (unsigned char c; (c = u8()) != '\n';) {
      s += static_cast<char>(c);
      if (s.size() > 4096) throw InputError(fmt::format("{}: {}: text line longer than 4096 bytes", f_.path(), what_));
    }
    return s;
  }

 private:
  void fill(int64_t need) {
    const int64_t left = end_ - pos_;
    if (left < need)
      throw InputError(fmt::format("{}: truncated {} (ends at offset {} inside a pickle)", f_.path(), what_, end_));
    const int64_t n = std::min<int64_t>(left, 1 << 16);
    buf_.resize(static_cast<size_t>(n));
    f_.read(pos_, buf_.data(), n, what_);
    pos_ += n;
    at_ = 0;
  }
  const File& f_;
  int64_t pos_, end_;  // next byte to buffer, end of the region
  std::string what_;
  std::string buf_;
  size_t at_ = 0;
};

struct ZipEntry {
  int64_t local = 0, size = 0;  // local header offset, stored size
  int method = 0;
};

// The central directory of a zip archive (zip64 included): entry name -> where it lies.
std::map<std::string, ZipEntry> zip_directory(const File& f) {
  const std::string& path = f.path();
  const int64_t tail = std::min<int64_t>(f.size(), 22 + 65535);
  const std::string t = f.bytes(f.size() - tail, tail, "the zip end record");
  int64_t e = -1;
  for (int64_t i = tail - 22; i >= 0; --i)
    if (t.compare(static_cast<size_t>(i), 4, "PK\x05\x06") == 0) {
      e = i;
      break;
    }
  if (e < 0) throw InputError(fmt::format("{}: a zip archive without its end record (truncated?)", path));
  uint64_t count = le(&t[e + 10], 2), cd_size = le(&t[e + 12], 4), cd_off = le(&t[e + 16], 4);
  if (count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
    if (e < 20 || t.compare(static_cast<size_t>(e - 20), 4, "PK\x06\x07") != 0)
      throw InputError(fmt::format("{}: zip64 archive without its locator", path));
    const auto z64 = static_cast<int64_t>(le(&t[e - 20 + 8], 8));
    const std::string r = f.bytes(z64, 56, "the zip64 end record");
    if (r.compare(0, 4, "PK\x06\x06") != 0) throw InputError(fmt::format("{}: bad zip64 end record", path));
    count = le(&r[32], 8);
    cd_size = le(&r[40], 8);
    cd_off = le(&r[48], 8);
  }
  if (cd_size > static_cast<uint64_t>(f.size()) || cd_off > static_cast<uint64_t>(f.size()) - cd_size)
    throw InputError(fmt::format("{}: zip central directory past the end of the file", path));
  const std::string cd = f.bytes(static_cast<int64_t>(cd_off), static_cast<int64_t>(cd_size), "the zip directory");
  std::map<std::string, ZipEntry> out;
  size_t p = 0;
  for (uint64_t k = 0; k < count; ++k) {
    if (p + 46 > cd.size() || cd.compare(p, 4, "PK\x01\x02") != 0)
      throw InputError(fmt::format("{}: zip directory entry {} is damaged", path, k));
    const char* h = &cd[p];
    ZipEntry z;
    z.method = static_cast<int>(le(h + 10, 2));
    uint64_t size = le(h + 20, 4), local = le(h + 42, 4);
    const size_t n = le(h + 28, 2), m = le(h + 30, 2), c = le(h + 32, 2);
    if (p + 46 + n + m + c > cd.size()) throw InputError(fmt::format("{}: zip directory entry {} is damaged", path, k));
    std::string name = cd.substr(p + 46, n);
    const size_t extra_end = p + 46 + n + m;
    for (size_t x = p + 46 + n; x + 4 <= extra_end;) {  // zip64 extended information
      const uint64_t id = le(&cd[x], 2), len = le(&cd[x + 2], 2);
      const size_t field_end = std::min<size_t>(x + 4 + len, extra_end);
      size_t q = x + 4;
      if (id == 1) {
        auto next = [&](uint64_t& v) {
          if (v == 0xFFFFFFFF && q + 8 <= field_end) v = le(&cd[q], 8), q += 8;
        };
        uint64_t uncompressed = le(h + 24, 4);
        next(uncompressed);
        next(size);
        next(local);
      }
      x += 4 + len;
    }
    if (local > static_cast<uint64_t>(f.size()) || size > static_cast<uint64_t>(f.size()))
      throw InputError(fmt::format("{}: zip entry '{}' lies past the end of the file", path, name));
    z.size = static_cast<int64_t>(size);
    z.local = static_cast<int64_t>(local);
    out[std::move(name)] = z;
    p += 46 + n + m + c;
  }
  return out;
}

// Offset of an entry's data: after its local header, whose extra field may differ from the
// directory's (PyTorch pads it to align the data).
int64_t zip_data_offset(const File& f, const std::string& name, const ZipEntry& z) {
  const std::string h = f.bytes(z.local, 30, fmt::format("zip entry '{}'", name));
  if (h.compare(0, 4, "PK\x03\x04") != 0)
    throw InputError(fmt::format("{}: zip entry '{}' has no local header at offset {}", f.path(), name, z.local));
  if (z.method != 0)
    throw InputError(fmt::format("{}: zip entry '{}' is compressed (method {}); torch.save stores entries "
                                 "uncompressed", f.path(), name, z.method));
  const int64_t off = z.local + 30 + static_cast<int64_t>(le(&h[26], 2) + le(&h[28], 2));
  if (off > f.size() || z.size > f.size() - off)
    throw InputError(fmt::format("{}: truncated: zip entry '{}' ends past the end of the file", f.path(), name));
  return off;
}

// ---- pickle values -------------------------------------------------------------------------

struct Obj;
using Val = Obj*;  // owned by an Arena: pickles may build cycles (a list holding itself)
enum class Kind { None, Bool, Int, BigInt, Float, Str, Bytes, List, Tuple, Dict, Set, Global, Opaque, Storage, Tensor };

struct Obj {
  Kind kind = Kind::None;
  int64_t i = 0;  // Bool, Int
  double f = 0;   // Float
  std::string s;  // Str, Bytes, BigInt (little-endian bytes), Global/Opaque (module.name), Storage (key)
  std::vector<Val> items;                                 // List, Tuple, Set
  std::vector<std::pair<Val, Val>> dict;                  // Dict, in insertion order
  std::unordered_map<std::string, size_t> index;          // Dict: key -> position, for Str/Int keys
  std::string dtype;                                      // Storage: "" when not readable
  int elem = 0;                                           // Storage: bytes per element
  int64_t numel = 0;                                      // Storage: elements
  Val storage;                                            // Tensor
  int64_t offset = 0;                                     // Tensor: storage offset in elements
  std::vector<int64_t> size, stride;                      // Tensor
};

// Every value of a file's pickles, freed together with the reader.
class Arena {
 public:
  Val make(Kind k) {
    objs_.push_back(std::make_unique<Obj>());
    objs_.back()->kind = k;
    return objs_.back().get();
  }
  Val make_int(int64_t i, Kind k = Kind::Int) {
    Val v = make(k);
    v->i = i;
    return v;
  }
  Val make_str(std::string s, Kind k = Kind::Str) {
    Val v = make(k);
    v->s = std::move(s);
    return v;
  }

 private:
  std::vector<std::unique_ptr<Obj>> objs_;
};

// Key used to find an equal dict key again (SETITEM of a key already present replaces it).
std::optional<std::string> key_of(const Val& k) {
  if (k->kind == Kind::Str) return "s" + k->s;
  if (k->kind == Kind::Int || k->kind == Kind::Bool) return "i" + std::to_string(k->i);
  return std::nullopt;
}
void dict_set(Obj& d, Val k, Val v) {
  if (auto key = key_of(k)) {
    auto [it, fresh] = d.index.emplace(*key, d.dict.size());
    if (!fresh) {
      d.dict[it->second].second = std::move(v);
      return;
    }
  }
  d.dict.emplace_back(std::move(k), std::move(v));
}

struct StorageType {
  const char* name;
  const char* dtype;
  int elem;
};
constexpr StorageType kStorageTypes[] = {
    {"FloatStorage", "float32", 4}, {"DoubleStorage", "float64", 8}, {"HalfStorage", "float16", 2},
    {"BFloat16Storage", "bfloat16", 2}, {"LongStorage", "int64", 8}, {"IntStorage", "int32", 4},
    {"ShortStorage", "int16", 2}, {"CharStorage", "int8", 1}, {"ByteStorage", "uint8", 1},
    {"BoolStorage", "bool", 1}, {"UntypedStorage", "uint8", 1}};

// ---- the pickle interpreter ------------------------------------------------------------------

// One pickle, from its PROTO to its STOP, as pickle.Unpickler.load() reads it, except that no
// global is ever imported or called: REDUCE/NEWOBJ/OBJ of a known torch or collections
// function build the value it would return, all others build an Opaque value.
class Unpickler {
 public:
  using Persistent = std::function<Val(const Val& pid)>;
  Unpickler(Cursor& c, Arena& arena, Persistent persistent)
      : c_(c), arena_(arena), persistent_(std::move(persistent)) {}
  Val load();

 private:
  Val make(Kind k) { return arena_.make(k); }
  Val make_int(int64_t i, Kind k = Kind::Int) { return arena_.make_int(i, k); }
  Val make_str(std::string s, Kind k = Kind::Str) { return arena_.make_str(std::move(s), k); }
  uint64_t text_index() {  // the argument of the text opcodes PUT and GET
    const std::string s = c_.line();
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
      fail(fmt::format("memo index '{}' is not a number", s));
    return std::stoull(s);
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(fmt::format("{}: {}: {} (at offset {})", c_.path(), c_.what(), what, op_at_));
  }
  Val pop() {
    if (stack_.size() <= floor()) fail("pickle stack underflow");
    Val v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Val& top() {
    if (stack_.size() <= floor()) fail("pickle stack underflow");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<Val> pop_mark() {
    if (marks_.empty()) fail("pickle MARK missing");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<Val> v(std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(m)),
                       std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return v;
  }
  void memo_put(uint64_t k) { memo_[k] = top(); }
  Val memo_get(uint64_t k) const {
    auto it = memo_.find(k);
    if (it == memo_.end()) fail(fmt::format("pickle memo entry {} read before it was written", k));
    return it->second;
  }
  Val call(const Val& callable, const Val& args);
  Val tensor_from(const std::vector<Val>& a, const std::string& fn);
  Val seq(Kind k, std::vector<Val> items) {
    Val v = make(k);
    v->items = std::move(items);
    return v;
  }
  void set_items(Val& d, std::vector<Val>& kv) {
    if (kv.size() % 2) fail("SETITEMS with an odd number of values");
    if (d->kind != Kind::Dict) return;  // an opaque object's items: dropped with it
    for (size_t i = 0; i < kv.size(); i += 2) dict_set(*d, kv[i], kv[i + 1]);
  }

  Cursor& c_;
  Arena& arena_;
  Persistent persistent_;
  std::vector<Val> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Val> memo_;
  int64_t op_at_ = 0;
};

Val Unpickler::tensor_from(const std::vector<Val>& a, const std::string& fn) {
  auto ints = [&](const Val& t, const char* what) {
    if (t->kind != Kind::Tuple && t->kind != Kind::List) fail(fmt::format("{}: {} is not a tuple", fn, what));
    std::vector<int64_t> v;
    for (const Val& x : t->items) {
      if (x->kind != Kind::Int) fail(fmt::format("{}: {} holds a non-integer", fn, what));
      v.push_back(x->i);
    }
    return v;
  };
  if (a.size() < 4 || a[0]->kind != Kind::Storage || a[1]->kind != Kind::Int)
    fail(fmt::format("{} called with arguments that are not (storage, offset, size, stride, ...)", fn));
  Val t = make(Kind::Tensor);
  t->storage = a[0];
  t->offset = a[1]->i;
  t->size = ints(a[2], "size");
  t->stride = ints(a[3], "stride");
  if (t->size.size() != t->stride.size()) fail(fmt::format("{}: size and stride differ in length", fn));
  return t;
}

Val Unpickler::call(const Val& callable, const Val& args) {
  const std::vector<Val> none;
  const std::vector<Val>& a = args->kind == Kind::Tuple ? args->items : none;
  if (callable->kind != Kind::Global) return make_str("<call>", Kind::Opaque);
  const std::string& fn = callable->s;
  if (fn == "collections.OrderedDict" || fn == "builtins.dict" || fn == "__builtin__.dict") {
    Val d = make(Kind::Dict);
    if (a.size() == 1 && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple))
      for (const Val& kv : a[0]->items)
        if (kv->kind == Kind::Tuple && kv->items.size() == 2) dict_set(*d, kv->items[0], kv->items[1]);
    return d;
  }
  if (fn == "torch._utils._rebuild_tensor_v2" || fn == "torch._utils._rebuild_tensor") return tensor_from(a, fn);
  if (fn == "torch._utils._rebuild_parameter" || fn == "torch._utils._rebuild_parameter_with_state") {
    if (a.empty() || a[0]->kind != Kind::Tensor) fail(fn + " called without a tensor");
    return a[0];
  }
  if (fn == "torch._utils._rebuild_from_type_v2" && a.size() >= 3 && a[2]->kind == Kind::Tuple)
    return call(a[0], a[2]);  // (function, type, args, state): the plain tensor
  return make_str(fn, Kind::Opaque);
}

Val Unpickler::load() {
  for (;;) {
    op_at_ = c_.pos();
    const unsigned char op = c_.u8();
    switch (op) {
      case 0x80: {  // PROTO
        const unsigned v = c_.u8();
        if (v > 5) fail(fmt::format("pickle protocol {} (this reader knows 2 to 5)", v));
        break;
      }
      case 0x95: c_.take(8); break;  // FRAME: framing is transparent
      case '.': {                    // STOP
        Val v = pop();
        return v;
      }
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0': pop(); break;                            // POP
      case '1': pop_mark(); break;                       // POP_MARK
      case '2': stack_.push_back(top()); break;          // DUP
      case 'N': stack_.push_back(make(Kind::None)); break;
      case 0x88: stack_.push_back(make_int(1, Kind::Bool)); break;  // NEWTRUE
      case 0x89: stack_.push_back(make_int(0, Kind::Bool)); break;  // NEWFALSE
      case 'J': stack_.push_back(make_int(static_cast<int32_t>(c_.uint(4)))); break;  // BININT
      case 'K': stack_.push_back(make_int(c_.u8())); break;                           // BININT1
      case 'M': stack_.push_back(make_int(static_cast<int64_t>(c_.uint(2)))); break;  // BININT2
      case 0x8a:                                                                       // LONG1
      case 0x8b: {                                                                     // LONG4
        const uint64_t n = op == 0x8a ? c_.u8() : c_.uint(4);
        std::string b = c_.take(static_cast<int64_t>(n));
        if (n <= 8) {
          uint64_t u = n ? le(b.data(), static_cast<int>(n)) : 0;
          if (n && n < 8 && (static_cast<unsigned char>(b[n - 1]) & 0x80)) u |= ~uint64_t{0} << (8 * n);
          stack_.push_back(make_int(static_cast<int64_t>(u)));
        } else {
          stack_.push_back(make_str(std::move(b), Kind::BigInt));
        }
        break;
      }
      case 'I':    // INT (text): also the protocol-0 booleans I01 / I00
      case 'L': {  // LONG (text)
        std::string s = c_.line();
        if (op == 'L' && !s.empty() && s.back() == 'L') s.pop_back();
        if (s == "01" || s == "00") {
          stack_.push_back(make_int(s == "01", Kind::Bool));
          break;
        }
        try {
          size_t used = 0;
          const long long v = std::stoll(s, &used);
          if (used != s.size()) throw std::invalid_argument(s);
          stack_.push_back(make_int(v));
        } catch (const std::exception&) {
          stack_.push_back(make_str(s, Kind::BigInt));
        }
        break;
      }
      case 'G': {  // BINFLOAT: big-endian
        const std::string b = c_.take(8);
        uint64_t u = 0;
        for (char ch : b) u = (u << 8) | static_cast<unsigned char>(ch);
        Val v = make(Kind::Float);
        std::memcpy(&v->f, &u, 8);
        stack_.push_back(v);
        break;
      }
      case 'F': {  // FLOAT (text)
        const std::string s = c_.line();
        Val v = make(Kind::Float);
        try {
          v->f = std::stod(s);
        } catch (const std::exception&) {
          fail(fmt::format("FLOAT '{}' is not a number", s));
        }
        stack_.push_back(v);
        break;
      }
      case 'X': stack_.push_back(make_str(c_.take(static_cast<int64_t>(c_.uint(4))))); break;     // BINUNICODE
      case 0x8c: stack_.push_back(make_str(c_.take(c_.u8()))); break;                              // SHORT_BINUNICODE
      case 0x8d: stack_.push_back(make_str(c_.take(static_cast<int64_t>(c_.uint(8))))); break;    // BINUNICODE8
      case 'T': stack_.push_back(make_str(c_.take(static_cast<int64_t>(c_.uint(4))))); break;     // BINSTRING
      case 'U': stack_.push_back(make_str(c_.take(c_.u8()))); break;                               // SHORT_BINSTRING
      case 'V': stack_.push_back(make_str(c_.line())); break;                                      // UNICODE (text)
      case 'S': {                                                                                  // STRING (text)
        std::string s = c_.line();
        if (s.size() >= 2 && (s[0] == '\'' || s[0] == '"') && s.back() == s[0]) s = s.substr(1, s.size() - 2);
        stack_.push_back(make_str(std::move(s)));
        break;
      }
      case 'B': stack_.push_back(make_str(c_.take(static_cast<int64_t>(c_.uint(4))), Kind::Bytes)); break;
      case 'C': stack_.push_back(make_str(c_.take(c_.u8()), Kind::Bytes)); break;
      case 0x8e:  // BINBYTES8
      case 0x96:  // BYTEARRAY8
        stack_.push_back(make_str(c_.take(static_cast<int64_t>(c_.uint(8))), Kind::Bytes));
        break;
      case '}': stack_.push_back(make(Kind::Dict)); break;              // EMPTY_DICT
      case ']': stack_.push_back(make(Kind::List)); break;              // EMPTY_LIST
      case ')': stack_.push_back(make(Kind::Tuple)); break;             // EMPTY_TUPLE
      case 0x8f: stack_.push_back(make(Kind::Set)); break;              // EMPTY_SET
      case 't': stack_.push_back(seq(Kind::Tuple, pop_mark())); break;  // TUPLE
      case 'l': stack_.push_back(seq(Kind::List, pop_mark())); break;   // LIST
      case 0x91: stack_.push_back(seq(Kind::Set, pop_mark())); break;   // FROZENSET
      case 0x85:                                                        // TUPLE1
      case 0x86:                                                        // TUPLE2
      case 0x87: {                                                      // TUPLE3
        const size_t n = op - 0x84;
        std::vector<Val> v(n);
        for (size_t i = n; i-- > 0;) v[i] = pop();
        stack_.push_back(seq(Kind::Tuple, std::move(v)));
        break;
      }
      case 'd': {  // DICT
        std::vector<Val> kv = pop_mark();
        Val d = make(Kind::Dict);
        set_items(d, kv);
        stack_.push_back(d);
        break;
      }
      case 'a': {  // APPEND
        Val v = pop();
        if (top()->kind == Kind::List) top()->items.push_back(std::move(v));
        break;
      }
      case 'e':     // APPENDS
      case 0x90: {  // ADDITEMS
        std::vector<Val> v = pop_mark();
        Val& t = top();
        if (t->kind == Kind::List || t->kind == Kind::Set)
          t->items.insert(t->items.end(), std::make_move_iterator(v.begin()), std::make_move_iterator(v.end()));
        break;
      }
      case 's': {  // SETITEM
        std::vector<Val> kv(2);
        kv[1] = pop();
        kv[0] = pop();
        set_items(top(), kv);
        break;
      }
      case 'u': {  // SETITEMS
        std::vector<Val> kv = pop_mark();
        set_items(top(), kv);
        break;
      }
      case 'p': memo_put(text_index()); break;                   // PUT (text)
      case 'q': memo_put(c_.u8()); break;                       // BINPUT
      case 'r': memo_put(c_.uint(4)); break;                    // LONG_BINPUT
      case 0x94: memo_put(memo_.size()); break;                 // MEMOIZE
      case 'g': stack_.push_back(memo_get(text_index())); break;                  // GET (text)
      case 'h': stack_.push_back(memo_get(c_.u8())); break;                       // BINGET
      case 'j': stack_.push_back(memo_get(c_.uint(4))); break;                    // LONG_BINGET
      case 'c': {                                                                 // GLOBAL
        std::string module = c_.line();
        std::string name = c_.line();
        stack_.push_back(make_str(module + "." + name, Kind::Global));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        Val name = pop(), module = pop();
        if (name->kind != Kind::Str || module->kind != Kind::Str) fail("STACK_GLOBAL of non-strings");
        stack_.push_back(make_str(module->s + "." + name->s, Kind::Global));
        break;
      }
      case 'R':     // REDUCE
      case 0x81: {  // NEWOBJ
        Val args = pop(), fn = pop();
        stack_.push_back(call(fn, args));
        break;
      }
      case 0x92: {  // NEWOBJ_EX
        pop();      // kwargs
        Val args = pop(), cls = pop();
        stack_.push_back(call(cls, args));
        break;
      }
      case 'o': {  // OBJ
        std::vector<Val> v = pop_mark();
        if (v.empty()) fail("OBJ without a class");
        Val cls = v.front();
        v.erase(v.begin());
        stack_.push_back(call(cls, seq(Kind::Tuple, std::move(v))));
        break;
      }
      case 'i': {  // INST (text)
        std::string module = c_.line();
        std::string name = c_.line();
        pop_mark();
        stack_.push_back(make_str(module + "." + name, Kind::Opaque));
        break;
      }
      case 'b': pop(); break;  // BUILD: the state of an object lcam does not rebuild (or a dict's metadata)
      case 'Q':                // BINPERSID
      case 'P': {              // PERSID (text)
        Val pid = op == 'Q' ? pop() : make_str(c_.line());
        if (!persistent_) fail("a persistent reference outside the object pickle");
        stack_.push_back(persistent_(pid));
        break;
      }
      case 0x97:
      case 0x98: fail("out-of-band pickle buffers are not supported");
      case 0x82:
      case 0x83:
      case 0x84: fail("pickle extension-registry codes are not supported");
      default: fail(fmt::format("unknown pickle opcode 0x{:02x} (not a torch.save file?)", op));
    }
  }
}

// ---- flattening and reading ------------------------------------------------------------------

void half_to_float(const uint16_t* in, float* out, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const uint32_t h = in[k], sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
      const float v = std::ldexp(static_cast<float>(mant), -24);  // zero or subnormal, exact
      std::memcpy(&bits, &v, 4);
      bits |= sign;
    } else if (exp == 31) {
      bits = sign | 0x7f800000u | (mant << 13);
    } else {
      bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    std::memcpy(&out[k], &bits, 4);
  }
}

}  // namespace

bool looks_like(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  unsigned char b[4] = {0, 0, 0, 0};
  const ssize_t n = ::pread(fd, b, 4, 0);
  ::close(fd);
  if (n < 2) return false;
  if (n == 4 && std::memcmp(b, "PK\x03\x04", 4) == 0) return true;
  return b[0] == 0x80 && b[1] >= 2 && b[1] <= 5;
}

struct Reader::Impl {
  explicit Impl(const std::string& path) : file(path) {}
  struct Entry {
    TensorInfo info;
    Val tensor;
  };
  struct Storage {
    int64_t offset = -1;  // of its bytes in the file
    int64_t bytes = 0;    // available there
  };
  File file;
  Arena arena;
  std::vector<TensorInfo> infos;
  std::vector<Entry> entries;
  std::unordered_map<std::string, size_t> by_name;
  std::map<std::string, int64_t> ints;
  std::map<std::string, double> floats;
  std::map<std::string, std::string> strings;
  std::map<std::string, Storage> storages;  // by key
  std::map<std::string, Val> storage_vals;  // by key, as unpickled
  int64_t visits = 0;                       // by flatten()

  Val persistent(const Val& pid, bool legacy);
  void flatten(const Val& v, const std::string& name, int depth);
  void add_name(const std::string& name) {
    if (by_name.count(name) || ints.count(name) || floats.count(name) || strings.count(name))
      throw InputError(fmt::format("{}: two entries are both named '{}' once flattened", file.path(), name));
  }
  const Entry& entry(const std::string& name) const {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw InputError(fmt::format("{}: no tensor '{}'", file.path(), name));
    return entries[it->second];
  }
  // The tensor's elements from its first to its last: count of them, and where their bytes
  // start in the file.
  int64_t span(const Entry& e, int64_t& count) const;
  void check(const Entry& e) const;
};

Val Reader::Impl::persistent(const Val& pid, bool legacy) {
  const std::string& path = file.path();
  const auto& t = pid->items;
  if (pid->kind != Kind::Tuple || t.size() < 5 || t[0]->kind != Kind::Str || t[0]->s != "storage" ||
      t[1]->kind != Kind::Global || t[2]->kind != Kind::Str || t[4]->kind != Kind::Int || t[4]->i < 0)
    throw InputError(
        fmt::format("{}: a persistent reference that is not ('storage', type, key, location, size)", path));
  if (legacy && t.size() >= 6 && t[5]->kind != Kind::None)
    throw InputError(fmt::format("{}: storage views (files of PyTorch before 1.0) are not supported", path));
  const std::string& key = t[2]->s;
  auto it = storage_vals.find(key);
  if (it != storage_vals.end()) return it->second;
  Val s = arena.make_str(key, Kind::Storage);
  std::string type = t[1]->s;  // "torch.FloatStorage", "torch.cuda.FloatStorage"
  for (const char* pre : {"torch.cuda.", "torch.storage.", "torch."})
    if (type.rfind(pre, 0) == 0) {
      type = type.substr(std::strlen(pre));
      break;
    }
  for (const StorageType& st : kStorageTypes)
    if (type == st.name) {
      s->dtype = st.dtype;
      s->elem = st.elem;
    }
  if (s->dtype.empty()) s->dtype = "<" + t[1]->s + ">";
  s->numel = t[4]->i;
  storage_vals[key] = s;
  return s;
}

void Reader::Impl::flatten(const Val& v, const std::string& name, int depth) {
  if (depth > 64) throw InputError(fmt::format("{}: '{}' is nested more than 64 levels deep", file.path(), name));
  // Values shared through the memo may be visited many times (a list holding itself, or
  // doubling at every level): a bound on the visits keeps such a file from running forever.
  if (++visits > (1 << 22))
    throw InputError(fmt::format("{}: more than {} values once nested containers are unfolded", file.path(), 1 << 22));
  auto child = [&](const std::string& k) { return name.empty() ? k : name + "." + k; };
  switch (v->kind) {
    case Kind::Tensor: {
      add_name(name);
      TensorInfo info{name, v->size, v->storage->dtype};
      by_name[name] = entries.size();
      entries.push_back({info, v});
      infos.push_back(std::move(info));
      break;
    }
    case Kind::Dict:
      for (const auto& [k, x] : v->dict) {
        if (k->kind == Kind::Str) flatten(x, child(k->s), depth + 1);
        else if (k->kind == Kind::Int) flatten(x, child(std::to_string(k->i)), depth + 1);
        else if (k->kind == Kind::Bool) flatten(x, child(k->i ? "True" : "False"), depth + 1);
      }
      break;
    case Kind::List:
    case Kind::Tuple:
      for (size_t k = 0; k < v->items.size(); ++k) flatten(v->items[k], child(std::to_string(k)), depth + 1);
      break;
    case Kind::Int:
    case Kind::Bool:
      add_name(name);
      ints[name] = v->i;
      break;
    case Kind::Float:
      add_name(name);
      floats[name] = v->f;
      break;
    case Kind::Str:
      add_name(name);
      strings[name] = v->s;
      break;
    default: break;  // None, bytes, sets, big integers, opaque objects
  }
}

// Validates a tensor's view of its storage; throws naming the tensor.
void Reader::Impl::check(const Entry& e) const {
  const Obj& t = *e.tensor;
  const Obj& s = *t.storage;
  const std::string& path = file.path();
  const std::string& name = e.info.name;
  if (s.elem == 0) return;  // not readable; read() says so
  int64_t numel = 1, last = t.offset;
  for (size_t d = 0; d < t.size.size(); ++d) {
    if (t.size[d] < 0 || t.stride[d] < 0 || t.size[d] > (int64_t{1} << 40) || t.stride[d] > (int64_t{1} << 40))
      throw InputError(fmt::format("{}: tensor '{}' has size {} and stride {}, which lcam does not read", path, name,
                                   shape_str(t.size), shape_str(t.stride)));
    if (t.size[d] == 0) numel = 0;
    else if (numel) numel = numel > (int64_t{1} << 48) / t.size[d] ? -1 : numel * t.size[d];
    if (numel < 0) throw InputError(fmt::format("{}: tensor '{}' {} is too large", path, name, shape_str(t.size)));
    if (t.size[d] > 0) last += (t.size[d] - 1) * t.stride[d];
  }
  if (numel == 0) return;
  if (t.offset < 0 || last >= s.numel)
    throw InputError(fmt::format("{}: tensor '{}' {} reaches element {} of a storage of {}", path, name,
                                 shape_str(t.size), last, s.numel));
  auto it = storages.find(s.s);
  if (it == storages.end() || it->second.offset < 0)
    throw InputError(fmt::format("{}: tensor '{}': its storage '{}' is not in the file", path, name, s.s));
  if (s.numel > it->second.bytes / s.elem)
    throw InputError(fmt::format("{}: truncated: storage '{}' of tensor '{}' holds {} bytes, {} expected", path,
                                 s.s, name, it->second.bytes, s.numel * s.elem));
}

int64_t Reader::Impl::span(const Entry& e, int64_t& count) const {
  const Obj& t = *e.tensor;
  const Obj& s = *t.storage;
  if (s.elem == 0)
    throw InputError(fmt::format("{}: tensor '{}' is stored as {}, which lcam does not read", file.path(),
                                 e.info.name, s.dtype.substr(1, s.dtype.size() - 2)));
  int64_t last = t.offset;
  count = 1;
  for (size_t d = 0; d < t.size.size(); ++d) {
    if (t.size[d] == 0) count = 0;
    last += (t.size[d] - 1) * t.stride[d];
  }
  if (count == 0) return 0;
  count = last - t.offset + 1;
  return storages.at(s.s).offset + t.offset * s.elem;
}

// Visits a tensor's elements in row-major order: f(k, j) with k the output index and j the
// element's index relative to the tensor's first element.
template <class F>
void for_each_element(const Obj& t, F&& f) {
  const size_t nd = t.size.size();
  int64_t n = 1;
  for (int64_t s : t.size) n *= s;
  if (n == 0) return;
  std::vector<int64_t> idx(nd, 0);
  int64_t j = 0;
  for (int64_t k = 0; k < n; ++k) {
    f(k, j);
    for (size_t d = nd; d-- > 0;) {  // odometer
      if (++idx[d] < t.size[d]) {
        j += t.stride[d];
        break;
      }
      j -= (t.size[d] - 1) * t.stride[d];
      idx[d] = 0;
    }
  }
}

Reader::Reader(const std::string& path) : path_(path), impl_(std::make_unique<Impl>(path)) {
  Impl& m = *impl_;
  const File& f = m.file;
  char head[4] = {0, 0, 0, 0};
  f.read(0, head, std::min<int64_t>(4, f.size()), "the file's first bytes");
  Val obj;
  if (std::memcmp(head, "PK\x03\x04", 4) == 0) {
    const auto dir = zip_directory(f);
    std::string prefix;
    int found = 0;
    for (const auto& [name, z] : dir) {
      const std::string tail = "data.pkl";
      if (name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0 &&
          std::count(name.begin(), name.end(), '/') == 1) {
        prefix = name.substr(0, name.size() - tail.size());
        ++found;
      }
    }
    if (found != 1) {
      const bool script = std::any_of(dir.begin(), dir.end(), [](const auto& e) {
        return e.first.find("/constants.pkl") != std::string::npos || e.first.find("/code/") != std::string::npos;
      });
      throw InputError(script ? fmt::format("{}: a TorchScript archive (torch.jit.save); save the weights with "
                                            "torch.save(model.state_dict(), PATH)", path)
                              : fmt::format("{}: a zip archive with {} top-level data.pkl entries, not a torch.save "
                                            "file", path, found));
    }
    if (auto it = dir.find(prefix + "byteorder"); it != dir.end()) {
      const int64_t off = zip_data_offset(f, it->first, it->second);
      if (f.bytes(off, std::min<int64_t>(it->second.size, 8), "the byteorder entry") != "little")
        throw InputError(fmt::format("{}: saved on a big-endian machine, which lcam does not read", path));
    }
    const ZipEntry& pkl = dir.at(prefix + "data.pkl");
    const int64_t off = zip_data_offset(f, prefix + "data.pkl", pkl);
    Cursor c(f, off, off + pkl.size, "data.pkl");
    obj = Unpickler(c, m.arena, [&](const Val& pid) { return m.persistent(pid, false); }).load();
    for (const auto& [key, s] : m.storage_vals) {
      auto it = dir.find(prefix + "data/" + key);
      if (it == dir.end()) continue;  // check() names the tensor
      Impl::Storage& st = m.storages[key];
      st.offset = zip_data_offset(f, it->first, it->second);
      st.bytes = it->second.size;
    }
  } else {
    Cursor c(f, 0, f.size(), "the pickle");
    const Val magic = Unpickler(c, m.arena, nullptr).load();
    static const std::string kMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);  // 0x1950a86a20f9469cfc6c
    if (magic->kind != Kind::BigInt || magic->s != kMagic)
      throw InputError(fmt::format("{}: a pickle, but not one written by torch.save (no magic number)", path));
    const Val version = Unpickler(c, m.arena, nullptr).load();
    if (version->kind != Kind::Int || version->i != 1001)
      throw InputError(fmt::format("{}: legacy torch.save protocol version {}, expected 1001", path,
                                   version->kind == Kind::Int ? std::to_string(version->i) : "?"));
    const Val sys_info = Unpickler(c, m.arena, nullptr).load();
    if (sys_info->kind == Kind::Dict)
      for (const auto& [k, v] : sys_info->dict)
        if (k->kind == Kind::Str && k->s == "little_endian" && v->kind == Kind::Bool && !v->i)
          throw InputError(fmt::format("{}: saved on a big-endian machine, which lcam does not read", path));
    obj = Unpickler(c, m.arena, [&](const Val& pid) { return m.persistent(pid, true); }).load();
    const Val keys = Unpickler(c, m.arena, nullptr).load();
    if (keys->kind != Kind::List) throw InputError(fmt::format("{}: the storage key list is missing", path));
    int64_t pos = c.pos();
    for (const Val& k : keys->items) {
      if (k->kind != Kind::Str) throw InputError(fmt::format("{}: a storage key that is not a string", path));
      auto it = m.storage_vals.find(k->s);
      if (it == m.storage_vals.end() || it->second->elem == 0)
        throw InputError(fmt::format("{}: storage '{}' of an unknown element size", path, k->s));
      int64_t numel = 0;
      f.read(pos, &numel, 8, fmt::format("the size of storage '{}'", k->s));
      if (numel < 0 || numel > (f.size() - pos - 8) / it->second->elem)
        throw InputError(fmt::format("{}: truncated: storage '{}' claims {} elements past the end of the file",
                                     path, k->s, numel));
      m.storages[k->s] = {pos + 8, numel * it->second->elem};
      pos += 8 + numel * it->second->elem;
    }
  }
  m.flatten(obj, "", 0);
  for (const auto& e : m.entries) m.check(e);
}

Reader::~Reader() = default;

const std::vector<TensorInfo>& Reader::tensors() const { return impl_->infos; }

const TensorInfo* Reader::find(const std::string& name) const {
  auto it = impl_->by_name.find(name);
  return it == impl_->by_name.end() ? nullptr : &impl_->entries[it->second].info;
}

Tensor Reader::read(const std::string& name) const {
  const Impl::Entry& e = impl_->entry(name);
  const Obj& t = *e.tensor;
  const std::string& dt = t.storage->dtype;
  int64_t count = 0;
  const int64_t at = impl_->span(e, count);
  Tensor out = Tensor::empty(t.size);
  float* o = out.data();
  if (count == 0) return out;
  const std::string what = fmt::format("tensor '{}'", name);
  bool row_major = true;  // the bytes are the tensor (a permuted view spans numel elements too)
  int64_t expect = 1;
  for (size_t d = t.size.size(); d-- > 0;) {
    if (t.size[d] != 1 && t.stride[d] != expect) row_major = false;
    expect *= t.size[d];
  }
  if (dt == "float32" && row_major) {  // straight into the tensor
    impl_->file.read(at, o, count * 4, what);
    return out;
  }
  const std::string raw = impl_->file.bytes(at, count * t.storage->elem, what);
  const char* r = raw.data();
  // One pass with the conversion chosen once, not per element.
  auto run = [&](auto get) { for_each_element(t, [&](int64_t k, int64_t j) { o[k] = get(j); }); };
  if (dt == "float32") {
    run([r](int64_t j) {
      float v;
      std::memcpy(&v, r + 4 * j, 4);
      return v;
    });
  } else if (dt == "float64") {
    run([r](int64_t j) {
      double v;
      std::memcpy(&v, r + 8 * j, 8);
      return static_cast<float>(v);
    });
  } else if (dt == "float16") {
    run([r](int64_t j) {
      uint16_t h;
      float v;
      std::memcpy(&h, r + 2 * j, 2);
      half_to_float(&h, &v, 1);
      return v;
    });
  } else if (dt == "bfloat16") {
    run([r](int64_t j) {
      const uint32_t b = static_cast<uint32_t>(le(r + 2 * j, 2)) << 16;
      float v;
      std::memcpy(&v, &b, 4);
      return v;
    });
  } else if (dt == "int64") {
    run([r](int64_t j) { return static_cast<float>(static_cast<int64_t>(le(r + 8 * j, 8))); });
  } else if (dt == "int32") {
    run([r](int64_t j) { return static_cast<float>(static_cast<int32_t>(le(r + 4 * j, 4))); });
  } else if (dt == "int16") {
    run([r](int64_t j) { return static_cast<float>(static_cast<int16_t>(le(r + 2 * j, 2))); });
  } else if (dt == "int8") {
    run([r](int64_t j) { return static_cast<float>(static_cast<int8_t>(r[j])); });
  } else if (dt == "uint8") {
    run([r](int64_t j) { return static_cast<float>(static_cast<unsigned char>(r[j])); });
  } else {  // bool
    run([r](int64_t j) { return r[j] ? 1.f : 0.f; });
  }
  return out;
}

std::vector<int64_t> Reader::read_i64(const std::string& name) const {
  const Impl::Entry& e = impl_->entry(name);
  const Obj& t = *e.tensor;
  const std::string& dt = t.storage->dtype;
  if (dt.rfind("int", 0) != 0 && dt != "uint8" && dt != "bool")
    throw InputError(fmt::format("{}: tensor '{}' is {}, not an integer tensor", path_, name, dt));
  int64_t count = 0;
  const int64_t at = impl_->span(e, count);
  const std::string raw = impl_->file.bytes(at, count * t.storage->elem, fmt::format("tensor '{}'", name));
  int64_t n = 1;
  for (int64_t s : t.size) n *= s;
  std::vector<int64_t> out(static_cast<size_t>(count ? n : 0), 0);
  const int w = t.storage->elem;
  for_each_element(t, [&](int64_t k, int64_t j) {
    uint64_t u = le(raw.data() + w * j, w);
    if (dt != "uint8" && dt != "bool" && w < 8 && (u >> (8 * w - 1)) & 1) u |= ~uint64_t{0} << (8 * w);
    out[static_cast<size_t>(k)] = static_cast<int64_t>(u);
  });
  return out;
}

std::optional<int64_t> Reader::int_value(const std::string& name) const {
  auto it = impl_->ints.find(name);
  return it == impl_->ints.end() ? std::nullopt : std::optional<int64_t>(it->second);
}
std::optional<double> Reader::float_value(const std::string& name) const {
  auto it = impl_->floats.find(name);
  return it == impl_->floats.end() ? std::nullopt : std::optional<double>(it->second);
}
std::optional<std::string> Reader::string_value(const std::string& name) const {
  auto it = impl_->strings.find(name);
  return it == impl_->strings.end() ? std::nullopt : std::optional<std::string>(it->second);
}

}  // namespace lcam::pth
