// classes.h — class names: the 1000 ImageNet synsets compiled into the binary
// (data/imagenet-synsets.txt, class-index order) or a file of `SYNSET NAME` lines.
#pragma once
#include <fstream>  // std::ifstream
#include <string>   // std::string
#include <vector>   // std::vector

namespace lcam {

struct ClassName {
  std::string synset;  // "n01440764" (may be empty for files that give only names)
  std::string name;    // "tench"
};

const std::vector<ClassName>& imagenet_classes();
// One class per non-empty line: "SYNSET NAME..." or just "NAME". InputError on a missing file.
std::vector<ClassName> load_class_names(const std::string& path);
std::vector<ClassName> parse_class_names(const std::string& text);

// A text file opened for reading (class names, lists, boxes); InputError "PATH: is a folder,
// not a WHAT" or "PATH: cannot open WHAT (reason)" otherwise.
std::ifstream open_text_file(const std::string& path, const std::string& what);

}  // namespace lcam
