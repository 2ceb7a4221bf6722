// classes.cpp — see classes.h.
#include "loaders/classes.h"

#include <cerrno>      // errno
#include <cstring>     // std::strerror
#include <filesystem>  // std::filesystem::is_directory
#include <fstream>     // std::ifstream
#include <sstream>     // std::stringstream

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"  // InputError

namespace lcam {

extern const char* const kImagenetSynsets;  // generated from data/imagenet-synsets.txt

std::vector<ClassName> parse_class_names(const std::string& text) {
  std::vector<ClassName> out;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    const bool has_synset = sp != std::string::npos && line.size() > 1 && line[0] == 'n' &&
                            line.find_first_not_of("0123456789", 1) == sp;
    if (has_synset)
      out.push_back({line.substr(0, sp), line.substr(sp + 1)});
    else
      out.push_back({"", line});
  }
  return out;
}

const std::vector<ClassName>& imagenet_classes() {
  static const std::vector<ClassName> names = parse_class_names(kImagenetSynsets);
  return names;
}

std::ifstream open_text_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(fmt::format("{}: is a folder, not a {}", path, what));
  errno = 0;
  std::ifstream f(path);
  if (!f) throw InputError(fmt::format("{}: cannot open {} ({})", path, what, errno ? std::strerror(errno) : "unreadable"));
  return f;
}

std::vector<ClassName> class_names_for(const std::string& file, int K) {
  if (file.empty()) return K == 1000 ? imagenet_classes() : std::vector<ClassName>{};
  std::vector<ClassName> names = load_class_names(file);
  if (static_cast<int64_t>(names.size()) != K)
    throw InputError(fmt::format("{}: {} class names, but the model has {} classes (--classes)", file, names.size(), K));
  return names;
}

std::vector<ClassName> load_class_names(const std::string& path) {
  std::ifstream f = open_text_file(path, "class-name file");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f)
      throw InputError(fmt::format("{}: not a text file (control byte 0x{:02x} at offset {}); expected class names, one per line", path, c, i));
  }
  auto names = parse_class_names(text);
  if (names.empty()) throw InputError(fmt::format("{}: no class names in file", path));
  return names;
}

}  // namespace lcam
