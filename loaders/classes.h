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

// The class names of a model with K classes: the file's, which must hold exactly K (InputError
// "FILE: N class names, but the model has K classes" otherwise), or with no file the ImageNet
// names for K = 1000 and none for other models.
std::vector<ClassName> class_names_for(const std::string& file, int K);

// A text file opened for reading (class names, lists, boxes); InputError "PATH: is a folder,
// not a WHAT" or "PATH: cannot open WHAT (reason)" otherwise.
std::ifstream open_text_file(const std::string& path, const std::string& what);

}  // namespace lcam
