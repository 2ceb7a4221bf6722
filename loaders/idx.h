// idx.h — IDX files (the MNIST / Fashion-MNIST format: big-endian magic 0x0000TTNN, N
// dimensions of big-endian uint32, then the data), plain or gzip-compressed, unsigned-byte data
// only; and Fashion-MNIST's image/label pairs as the Debian package dataset-fashion-mnist
// installs them (/usr/share/datasets/fashion-mnist). Every read is checked: a missing file, a
// wrong magic or type, a truncated or oversized file is an InputError naming the file.
#pragma once
#include <cstdint>  // uint8_t, int64_t
#include <string>   // std::string
#include <vector>   // std::vector

namespace lcam {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // row-major, prod(dims) bytes
};

IdxArray read_idx(const std::string& path);

struct FashionMnist {
  int64_t count = 0;
  int rows = 0, cols = 0;
  std::vector<uint8_t> images;  // count x rows x cols, 0 = background
  std::vector<uint8_t> labels;  // count, in [0, 10)
  static const char* const kClassNames[10];
};

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// The training (60000) or test (10000) split from `dir` ({train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]).
// Any number of items is accepted (a subset keeps the format).
FashionMnist load_fashion_mnist(const std::string& dir, bool train);
// Throws the InputError load_fashion_mnist would when one of the split's two files is missing,
// without reading them (commands check it before their work starts).
void require_fashion_mnist(const std::string& dir, bool train);

}  // namespace lcam
