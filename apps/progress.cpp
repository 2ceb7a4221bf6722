// progress.cpp — see progress.h.
#include "apps/progress.h"

#include <unistd.h>  // isatty

#include <cstdio>   // std::fprintf, std::fopen
#include <algorithm>  // std::sort, std::find
#include <cstring>  // std::strerror
#include <sstream>  // std::stringstream

#include <fmt/format.h>  // fmt::format
#include <fmt/ranges.h>  // fmt::join

#include "apps/cli.h"        // parse_integer
#include "engine/common.h"  // InputError

namespace lcam::app {

Progress::Progress(std::string what, int64_t total, std::string unit)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), tty_(isatty(fileno(stderr))),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& extra) {
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_).count();
  if (since < (tty_ ? 0.2 : 10.0)) return;
  last_ = now;
  print(done, extra, false);
}

void Progress::finish(const std::string& extra) { print(total_, extra, true); }

void Progress::print(int64_t done, const std::string& extra, bool final) {
  const double t = elapsed_s();
  const double rate = t > 0 ? done / t : 0;
  const double eta = rate > 0 ? (total_ - done) / rate : 0;
  std::string line = fmt::format("{}: {}/{} {} ({:.1f} {}/s", what_, done, total_, unit_, rate, unit_);
  line += final ? fmt::format(", {:.1f} s)", t) : fmt::format(", ETA {:.0f} s)", eta);
  if (!extra.empty()) line += " " + extra;
  if (tty_)
    std::fprintf(stderr, "\r\033[K%s%s", line.c_str(), final ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

void write_text_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = temp_path_for(path);
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw InputError(fmt::format("{}: cannot write ({})", path, std::strerror(errno)));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok) {
    std::remove(tmp.c_str());
    throw InputError(fmt::format("{}: write failed (disk full?)", path));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw InputError(fmt::format("{}: cannot rename into place ({})", path, std::strerror(errno)));
  }
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int first_repeat(const std::vector<int>& v) {
  for (size_t i = 0; i < v.size(); ++i)
    if (std::find(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v[i]) != v.begin() + static_cast<std::ptrdiff_t>(i))
      return static_cast<int>(i);
  return -1;
}

std::vector<std::string> split_items(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t comma; (comma = s.find(',', start)) != std::string::npos; start = comma + 1) out.push_back(s.substr(start, comma - start));
  out.push_back(s.substr(start));
  return out;
}

std::vector<int> parse_int_list(const std::string& flag, const std::string& s, int max) {
  if (s.empty()) throw InputError(fmt::format("{}: empty list", flag));
  std::vector<int> out;
  for (const std::string& item : split_items(s)) {  // the empty ones of "1,,2" and "1," included
    long long v = 0;
    if (!parse_integer(item, v) || v < 1 || v > max)
      throw InputError(fmt::format("{}: '{}' is not a comma-separated list of integers in [1,{}]", flag, s, max));
    out.push_back(static_cast<int>(v));
  }
  return out;
}

std::string one_line(const std::string& what) {
  std::string out;
  for (const char ch : what) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out += ch;
  }
  return out;
}

void image_error(const std::string& what, const char* kind) {
  // On a terminal the progress line is redrawn in place without a newline: end it first.
  static const bool tty = isatty(fileno(stderr));
  std::fprintf(stderr, "%slcam: %s: %s\n", tty ? "\n" : "", kind, one_line(what).c_str());
}

void require_images_read(int64_t read, size_t total, const std::string& list) {
  if (read == 0 && total > 0)
    throw InputError(fmt::format("{}: none of its {} images could be read (reasons above); nothing written", list, total));
}

int images_status(int64_t failed, size_t total, const char* note) {
  if (!failed) return 0;
  if (total > 1)
    std::fprintf(stderr, "lcam: error: %lld of %zu images could not be read%s\n", static_cast<long long>(failed), total, note);
  return 2;
}

std::vector<std::string> parse_name_list(const std::string& flag, const std::string& s,
                                         const std::vector<std::string>& allowed) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) {
      if (std::find(allowed.begin(), allowed.end(), item) == allowed.end())
        throw InputError(fmt::format("{}: '{}' is not one of {}", flag, item, fmt::join(allowed, ", ")));
      out.push_back(item);
    }
  if (out.empty()) throw InputError(fmt::format("{}: give one or more of {}", flag, fmt::join(allowed, ", ")));
  return out;
}

}  // namespace lcam::app
