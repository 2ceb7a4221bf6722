// progress.h — progress of long runs on stderr: a line redrawn in place (items/s, ETA) on a
// terminal, a plain log line every ten seconds otherwise.
#pragma once
#include <chrono>  // std::chrono::steady_clock
#include <cstddef> // size_t
#include <cstdint> // int64_t
#include <string>  // std::string
#include <vector>  // std::vector

namespace lcam::app {

class Progress {
 public:
  Progress(std::string what, int64_t total, std::string unit = "images");
  // done items so far; extra is appended (e.g. loss terms).
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double elapsed_s() const;

 private:
  void print(int64_t done, const std::string& extra, bool final);
  std::string what_, unit_;
  int64_t total_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_;
};

// One line on stderr for an image that could not be read: "lcam: KIND: WHAT" (KIND "error", or
// "skipped" where the run goes on without it), after a newline on a terminal, where the progress
// line is being redrawn in place.
void image_error(const std::string& what, const char* kind = "error");

// The exit status of a command over `total` images of which `failed` could not be read (each
// already reported by image_error): 0, or 2, after a count line on stderr when more than one
// image was given ("lcam: error: F of T images could not be read" + `note`).
int images_status(int64_t failed, size_t total, const char* note = "");

// Throws InputError "LIST: none of its N images could be read..." when `read` is 0 and the list
// held images: a run over nothing writes nothing (no empty labels, no table of zeros, no
// untrained checkpoint).
void require_images_read(int64_t read, size_t total, const std::string& list);

// An error message kept to one line: control characters (a newline in a file name, or in a
// tensor name read from a damaged file) are written as \xNN.
std::string one_line(const std::string& what);

// Atomically replaces `path` with `text` (written to temp_path_for(path), then renamed).
void write_text_atomic(const std::string& path, const std::string& text);

// Benchmark helpers: a monotonic clock in seconds, the median of samples, and a flag's
// comma-separated list of integers in [1, max] ("1,32"); InputError naming the flag otherwise.
double now_seconds();
double median(std::vector<double> v);
// The index of the first item equal to an earlier one, or -1 (flags whose items must differ).
int first_repeat(const std::vector<int>& v);
// The items of a comma-separated list, empty ones included ("1,,2," gives 1, "", 2, "").
std::vector<std::string> split_items(const std::string& s);
std::vector<int> parse_int_list(const std::string& flag, const std::string& s, int max);
// A flag's comma-separated list of names, each one of `allowed` (in the given order, empty
// items skipped); InputError naming the flag and the allowed names otherwise, or when empty.
std::vector<std::string> parse_name_list(const std::string& flag, const std::string& s,
                                         const std::vector<std::string>& allowed);

}  // namespace lcam::app
