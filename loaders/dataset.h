// dataset.h — the image lists training and evaluation read: the official list format
// (`RELATIVE/PATH LABEL` per line, paths relative to --data), the ImageNet train layout (one
// folder per synset) and a flat folder with a list. Every path is checked to stay inside the
// data folder; labels are checked against the number of classes. Omits reading the images:
// that is the batch loader's job (loaders/batch_loader.h). Also the box files that go with a
// list (`PATH X0 Y0 X1 Y1`, as `lcam scenes` writes them).
#pragma once
#include <cstddef>  // size_t
#include <map>      // std::map
#include <string>   // std::string
#include <vector>   // std::vector

namespace lcam {

struct Sample {
  std::string path;  // as written in the list (relative to the data folder)
  int label = -1;    // -1 when the list gives none
};

class Dataset {
 public:
  // A list file of `PATH LABEL` lines (or `PATH` alone when allow_unlabeled), paths relative
  // to `root`. Blank lines and lines starting with '#' are skipped. InputError, naming the file
  // and line, for: a missing root folder or list, an empty list, a malformed line, a label
  // outside [0, num_classes), an absolute path or one that leaves `root` through "..".
  static Dataset from_list(const std::string& root, const std::string& list, int num_classes,
                           bool allow_unlabeled = false);
  // The ImageNet train layout: root/SYNSET/IMAGE. Classes are the sorted folder names, as
  // torchvision's ImageFolder; when every folder is an ImageNet synset the label is its ImageNet
  // class index (the same numbers when all 1000 folders are present). Image files are those with
  // torchvision's image extensions, sorted within each class.
  static Dataset from_folders(const std::string& root);

  const std::string& root() const { return root_; }
  size_t size() const { return samples_.size(); }
  const Sample& operator[](size_t i) const { return samples_[i]; }
  std::string full_path(size_t i) const;
  // Keeps the first n samples (for --limit).
  void truncate(size_t n);

 private:
  std::string root_;
  std::vector<Sample> samples_;
};

// An object's bounding box in image pixels, end exclusive.
struct Box {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};
// A box file: `PATH X0 Y0 X1 Y1` per line, keyed by PATH as written. Blank lines and lines
// starting with '#' are skipped. InputError naming the file and line for a malformed line, an
// empty box, or (crop > 0) a box wholly outside the crop x crop image the boxes are drawn on
// (boxes are in crop pixels: one beyond the crop was most likely given in the original image's
// pixels); `what` names the flag in the message.
std::map<std::string, Box> read_boxes(const std::string& file, int crop = 0, const std::string& what = "--boxes");

}  // namespace lcam
