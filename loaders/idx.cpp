// idx.cpp — see idx.h. gzip through zlib's gzFile, which also reads uncompressed files as they are.
#include "loaders/idx.h"

#include <algorithm>  // std::min

#include <zlib.h>  // gzopen, gzread, gzclose

#include <filesystem>  // exists

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"  // InputError

namespace lcam {

const char* const FashionMnist::kClassNames[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

namespace {
struct Gz {
  gzFile f;
  ~Gz() {
    if (f) gzclose(f);
  }
};

void read_exact(gzFile f, void* dst, size_t n, const std::string& path, const char* what) {
  size_t done = 0;
  while (done < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
    const int got = gzread(f, static_cast<char*>(dst) + done, chunk);
    if (got <= 0) throw InputError(fmt::format("{}: truncated or corrupt IDX file (reading {})", path, what));
    done += static_cast<size_t>(got);
  }
}
}  // namespace

IdxArray read_idx(const std::string& path) {
  if (!std::filesystem::exists(path)) throw InputError(fmt::format("{}: no such file", path));
  Gz gz{gzopen(path.c_str(), "rb")};
  if (!gz.f) throw InputError(fmt::format("{}: cannot open", path));
  uint8_t magic[4];
  read_exact(gz.f, magic, 4, path, "the magic number");
  if (magic[0] != 0 || magic[1] != 0)
    throw InputError(fmt::format("{}: not an IDX file (magic {:02x}{:02x}{:02x}{:02x})", path, magic[0], magic[1], magic[2], magic[3]));
  if (magic[2] != 0x08) throw InputError(fmt::format("{}: IDX data type 0x{:02x}, only unsigned bytes (0x08) are read", path, magic[2]));
  const int nd = magic[3];
  if (nd < 1 || nd > 4) throw InputError(fmt::format("{}: IDX with {} dimensions (1 to 4 expected)", path, nd));
  IdxArray a;
  int64_t total = 1;
  for (int i = 0; i < nd; ++i) {
    uint8_t b[4];
    read_exact(gz.f, b, 4, path, "the dimensions");
    const int64_t d = (int64_t{b[0]} << 24) | (int64_t{b[1]} << 16) | (int64_t{b[2]} << 8) | b[3];
    if (d <= 0 || d > (1 << 24)) throw InputError(fmt::format("{}: implausible IDX dimension {}", path, d));
    a.dims.push_back(d);
    total *= d;
    if (total > (int64_t{1} << 32)) throw InputError(fmt::format("{}: IDX data too large", path));
  }
  // Grown as the data arrives: a short (or small compressed) file that declares gigabytes is
  // refused as truncated once its data ends, without allocating what it declares first.
  constexpr size_t kChunk = size_t{1} << 24;
  a.data.reserve(std::min(static_cast<size_t>(total), kChunk));
  while (a.data.size() < static_cast<size_t>(total)) {
    const size_t have = a.data.size(), n = std::min(static_cast<size_t>(total) - have, kChunk);
    a.data.resize(have + n);
    read_exact(gz.f, a.data.data() + have, n, path, "the data");
  }
  uint8_t extra;
  if (gzread(gz.f, &extra, 1) > 0) throw InputError(fmt::format("{}: trailing bytes after the IDX data", path));
  return a;
}

namespace {

// DIR/NAME.gz or DIR/NAME, else the error that says where the data comes from.
std::string find_idx(const std::string& dir, const std::string& name) {
  for (const char* ext : {".gz", ""}) {
    const std::string p = dir + "/" + name + ext;
    if (std::filesystem::exists(p)) return p;
  }
  throw InputError(fmt::format("{}/{}[.gz]: not found (Debian: apt-get install dataset-fashion-mnist; or point "
                               "--fashion-mnist at a folder with the IDX files)",
                               dir, name));
}

std::string stem_of(bool train) { return train ? "train" : "t10k"; }

}  // namespace

void require_fashion_mnist(const std::string& dir, bool train) {
  (void)find_idx(dir, stem_of(train) + "-images-idx3-ubyte");
  (void)find_idx(dir, stem_of(train) + "-labels-idx1-ubyte");
}

FashionMnist load_fashion_mnist(const std::string& dir, bool train) {
  const std::string stem = stem_of(train);
  const std::string ip = find_idx(dir, stem + "-images-idx3-ubyte"), lp = find_idx(dir, stem + "-labels-idx1-ubyte");
  IdxArray im = read_idx(ip), lb = read_idx(lp);
  if (im.dims.size() != 3) throw InputError(fmt::format("{}: expected images [N,rows,cols]", ip));
  if (lb.dims.size() != 1 || lb.dims[0] != im.dims[0])
    throw InputError(fmt::format("{}: {} labels for {} images in {}", lp, lb.dims.empty() ? 0 : lb.dims[0], im.dims[0], ip));
  for (size_t i = 0; i < lb.data.size(); ++i)
    if (lb.data[i] >= 10) throw InputError(fmt::format("{}: label {} at {} (classes 0..9)", lp, lb.data[i], i));
  FashionMnist f;
  f.count = im.dims[0];
  f.rows = static_cast<int>(im.dims[1]);
  f.cols = static_cast<int>(im.dims[2]);
  f.images = std::move(im.data);
  f.labels = std::move(lb.data);
  return f;
}

}  // namespace lcam
