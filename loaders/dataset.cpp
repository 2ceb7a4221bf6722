// dataset.cpp — see dataset.h.
#include "loaders/dataset.h"

#include <algorithm>   // std::sort
#include <cctype>      // std::tolower
#include <filesystem>  // directory iteration, path checks
#include <fstream>     // std::ifstream
#include <map>         // synset -> class index
#include <sstream>     // std::istringstream

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"    // InputError
#include "loaders/classes.h"  // imagenet_classes

namespace fs = std::filesystem;

namespace lcam {
namespace {

void require_folder(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) throw InputError(fmt::format("{}: no such folder (--data)", root));
}

// A relative path that stays inside the data folder: no root, no ".." climbing above it.
bool stays_inside(const std::string& rel) {
  fs::path p(rel);
  if (p.empty() || p.is_absolute() || p.has_root_name() || p.has_root_directory()) return false;
  int depth = 0;
  for (const auto& part : p.lexically_normal()) {
    if (part == "..") {
      if (--depth < 0) return false;
    } else if (part != ".") {
      ++depth;
    }
  }
  return depth > 0;
}

bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* kExt[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
  for (const char* e : kExt)
    if (ext == e) return true;
  return false;
}

}  // namespace

Dataset Dataset::from_list(const std::string& root, const std::string& list, int num_classes,
                           bool allow_unlabeled) {
  require_folder(root);
  std::ifstream in = open_text_file(list, "list file (--list)");
  Dataset d;
  d.root_ = root;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream ls(line);
    std::string path, label, extra;
    if (!(ls >> path) || path[0] == '#') continue;
    Sample s;
    s.path = path;
    if (ls >> label) {
      size_t used = 0;
      long v = -1;
      try {
        v = std::stol(label, &used);
      } catch (...) {
        used = 0;
      }
      if (used != label.size() || (ls >> extra))
        throw InputError(fmt::format("{}:{}: expected 'PATH LABEL', got '{}'", list, lineno, line));
      if (v < 0 || v >= num_classes)
        throw InputError(fmt::format("{}:{}: label {} out of range [0,{})", list, lineno, v, num_classes));
      s.label = static_cast<int>(v);
    } else if (!allow_unlabeled) {
      throw InputError(fmt::format("{}:{}: no label (expected 'PATH LABEL')", list, lineno));
    }
    if (!stays_inside(path))
      throw InputError(fmt::format("{}:{}: path '{}' is not inside --data {}", list, lineno, path, root));
    d.samples_.push_back(std::move(s));
  }
  if (d.samples_.empty()) throw InputError(fmt::format("{}: no images listed", list));
  return d;
}

Dataset Dataset::from_folders(const std::string& root) {
  require_folder(root);
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(root))
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  std::sort(classes.begin(), classes.end());
  if (classes.empty()) throw InputError(fmt::format("{}: no class folders (expected ROOT/SYNSET/IMAGE)", root));
  std::map<std::string, int> imagenet;
  const auto& names = imagenet_classes();
  for (size_t i = 0; i < names.size(); ++i) imagenet[names[i].synset] = static_cast<int>(i);
  bool all_synsets = true;
  for (const auto& c : classes) all_synsets = all_synsets && imagenet.count(c);
  Dataset d;
  d.root_ = root;
  for (size_t ci = 0; ci < classes.size(); ++ci) {
    std::vector<std::string> files;
    for (const auto& e : fs::recursive_directory_iterator(fs::path(root) / classes[ci]))
      if (e.is_regular_file() && is_image_name(e.path()))
        files.push_back(fs::relative(e.path(), root).string());
    std::sort(files.begin(), files.end());
    const int label = all_synsets ? imagenet[classes[ci]] : static_cast<int>(ci);
    for (auto& f : files) d.samples_.push_back({std::move(f), label});
  }
  if (d.samples_.empty()) throw InputError(fmt::format("{}: no images in the class folders", root));
  return d;
}

std::string Dataset::full_path(size_t i) const { return (fs::path(root_) / samples_[i].path).string(); }

void Dataset::truncate(size_t n) {
  if (n < samples_.size()) samples_.resize(n);
}

std::map<std::string, Box> read_boxes(const std::string& file, int crop, const std::string& what) {
  std::ifstream in = open_text_file(file, "box file (" + what + ")");
  std::map<std::string, Box> boxes;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    std::istringstream ls(line);
    std::string path, extra;
    Box b;
    if (!(ls >> path) || path[0] == '#') continue;
    if (!(ls >> b.x0 >> b.y0 >> b.x1 >> b.y1) || (ls >> extra) || b.x0 < 0 || b.y0 < 0 || b.x1 <= b.x0 || b.y1 <= b.y0)
      throw InputError(fmt::format("{}:{}: expected PATH X0 Y0 X1 Y1 with 0 <= X0 < X1 and 0 <= Y0 < Y1", file, n));
    if (crop > 0 && (b.x0 >= crop || b.y0 >= crop))
      throw InputError(fmt::format("{}:{}: box {} {} {} {} lies wholly outside the {}x{} crop ({} are in the crop's pixels: "
                                   "X0 and Y0 below {})", file, n, b.x0, b.y0, b.x1, b.y1, crop, crop, what, crop));
    boxes[path] = b;
  }
  if (boxes.empty()) throw InputError(fmt::format("{}: no boxes (lines PATH X0 Y0 X1 Y1) ({})", file, what));
  return boxes;
}

}  // namespace lcam
