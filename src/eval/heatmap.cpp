// heatmap.cpp — the needle heatmap (heatmap.h): cells, labels in a 3×5 bitmap font, PNG via libpng.
#include "longctx/heatmap.h"

#include <png.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "longctx/common.h"

namespace fs = std::filesystem;

namespace longctx {
namespace {

// 3×5 glyphs, one row per entry from the top, bit 4 = left column, 1 = right column.
struct Glyph {
  char c;
  uint8_t rows[5];
};
constexpr Glyph kFont[] = {
    {'0', {7, 5, 5, 5, 7}}, {'1', {2, 6, 2, 2, 7}}, {'2', {7, 1, 7, 4, 7}}, {'3', {7, 1, 7, 1, 7}},
    {'4', {5, 5, 7, 1, 1}}, {'5', {7, 4, 7, 1, 7}}, {'6', {7, 4, 7, 5, 7}}, {'7', {7, 1, 1, 1, 1}},
    {'8', {7, 5, 7, 5, 7}}, {'9', {7, 5, 7, 1, 7}}, {'.', {0, 0, 0, 0, 2}}, {'%', {5, 1, 2, 4, 5}},
    {'=', {0, 7, 0, 7, 0}}, {'-', {0, 0, 7, 0, 0}}, {':', {0, 2, 0, 2, 0}}, {'/', {1, 1, 2, 4, 4}},
    {'+', {0, 2, 7, 2, 0}}, {'(', {1, 2, 2, 2, 1}}, {')', {4, 2, 2, 2, 4}}, {',', {0, 0, 0, 2, 4}},
    {'_', {0, 0, 0, 0, 7}}, {'A', {2, 5, 7, 5, 5}}, {'B', {6, 5, 6, 5, 6}}, {'C', {3, 4, 4, 4, 3}},
    {'D', {6, 5, 5, 5, 6}}, {'E', {7, 4, 6, 4, 7}}, {'F', {7, 4, 6, 4, 4}}, {'G', {3, 4, 5, 5, 3}},
    {'H', {5, 5, 7, 5, 5}}, {'I', {7, 2, 2, 2, 7}}, {'J', {1, 1, 1, 5, 2}}, {'K', {5, 5, 6, 5, 5}},
    {'L', {4, 4, 4, 4, 7}}, {'M', {5, 7, 7, 5, 5}}, {'N', {6, 5, 5, 5, 5}}, {'O', {2, 5, 5, 5, 2}},
    {'P', {6, 5, 6, 4, 4}}, {'Q', {2, 5, 5, 6, 3}}, {'R', {6, 5, 6, 5, 5}}, {'S', {3, 4, 2, 1, 6}},
    {'T', {7, 2, 2, 2, 2}}, {'U', {5, 5, 5, 5, 7}}, {'V', {5, 5, 5, 5, 2}}, {'W', {5, 5, 7, 7, 5}},
    {'X', {5, 5, 2, 5, 5}}, {'Y', {5, 5, 2, 2, 2}}, {'Z', {7, 1, 2, 4, 7}},
};
constexpr int kScale = 2;                  // font pixels per glyph pixel
constexpr int kAdvance = 4 * kScale;       // 3 columns and a gap
constexpr int kTextH = 5 * kScale;
constexpr int kCellW = 48, kCellH = 24;    // room for "100%" with margins
constexpr int kLeft = 64, kTop = 34, kBottom = 44, kRight = 12;
constexpr Rgb kWhite{255, 255, 255}, kBlack{0, 0, 0}, kGrey{90, 90, 90};

const Glyph* glyph(char c) {
  const char u = char(std::toupper(static_cast<unsigned char>(c)));
  for (const Glyph& g : kFont)
    if (g.c == u) return &g;
  return nullptr;  // a blank (space and anything the font lacks)
}

int text_width(const std::string& s) { return s.empty() ? 0 : int(s.size()) * kAdvance - kScale; }

class Canvas {
 public:
  explicit Canvas(Image& img) : img_(img) {}
  void fill(int x0, int y0, int w, int h, Rgb c) {
    for (int y = std::max(0, y0); y < std::min(img_.height, y0 + h); ++y)
      for (int x = std::max(0, x0); x < std::min(img_.width, x0 + w); ++x) {
        uint8_t* p = &img_.rgb[(size_t(y) * size_t(img_.width) + size_t(x)) * 3];
        p[0] = c.r, p[1] = c.g, p[2] = c.b;
      }
  }
  void text(int x, int y, const std::string& s, Rgb c) {
    for (char ch : s) {
      if (const Glyph* g = glyph(ch))
        for (int r = 0; r < 5; ++r)
          for (int col = 0; col < 3; ++col)
            if (g->rows[r] & (4 >> col)) fill(x + col * kScale, y + r * kScale, kScale, kScale, c);
      x += kAdvance;
    }
  }
  void text_centred(int cx, int cy, const std::string& s, Rgb c) {
    text(cx - text_width(s) / 2, cy - kTextH / 2, s, c);
  }

 private:
  Image& img_;
};

std::string depth_label(double d) {
  std::string s = fmt::format("{:.2f}", d);
  return s.ends_with('0') && s.find('.') != std::string::npos ? s.substr(0, s.size() - 1) : s;
}

std::string length_label(int64_t n) {
  if (n >= 10240 && n % 1024 == 0) return fmt::format("{}K", n / 1024);
  return fmt::format("{}", n);
}

}  // namespace

Rgb Image::at(int x, int y) const {
  CHECK(x >= 0 && x < width && y >= 0 && y < height, "pixel ({}, {}) outside a {}×{} image", x, y, width, height);
  const uint8_t* p = &rgb[(size_t(y) * size_t(width) + size_t(x)) * 3];
  return {p[0], p[1], p[2]};
}

Rgb heat_colour(double a) {
  CHECK(a >= 0.0 && a <= 1.0, "heatmap: accuracy {} is not in [0, 1]", a);
  // Three stops of a red-yellow-green scale (ColorBrewer RdYlGn ends and middle).
  constexpr Rgb kStops[3] = {{215, 48, 39}, {254, 224, 100}, {26, 152, 80}};
  const int i = a < 0.5 ? 0 : 1;
  const double t = a < 0.5 ? a / 0.5 : (a - 0.5) / 0.5;
  auto mix = [&](uint8_t x, uint8_t y) { return uint8_t(std::lround(double(x) + t * (double(y) - double(x)))); };
  return {mix(kStops[i].r, kStops[i + 1].r), mix(kStops[i].g, kStops[i + 1].g), mix(kStops[i].b, kStops[i + 1].b)};
}

HeatmapGeometry heatmap_geometry() { return {kLeft, kTop, kCellW, kCellH}; }

HeatmapData heatmap_data(const NeedleReport& rep) {
  HeatmapData h;
  for (const NeedleCell& c : rep.cells) {
    if (std::find(h.lengths.begin(), h.lengths.end(), c.length) == h.lengths.end()) h.lengths.push_back(c.length);
    if (std::find(h.depths.begin(), h.depths.end(), c.depth) == h.depths.end()) h.depths.push_back(c.depth);
  }
  h.value.assign(h.lengths.size() * h.depths.size(), 0.0);
  CHECK(rep.cells.size() == h.value.size(), "heatmap: {} cells are not a full grid of {} lengths × {} depths",
        rep.cells.size(), h.lengths.size(), h.depths.size());
  for (const NeedleCell& c : rep.cells) {
    const size_t l = size_t(std::find(h.lengths.begin(), h.lengths.end(), c.length) - h.lengths.begin());
    const size_t d = size_t(std::find(h.depths.begin(), h.depths.end(), c.depth) - h.depths.begin());
    h.value[d * h.lengths.size() + l] = c.samples > 0 ? double(c.retrieved) / double(c.samples) : 0.0;
  }
  h.title = fmt::format("step {}  theta {:g}", rep.global_step, rep.rope_theta);
  return h;
}

Image draw_heatmap(const HeatmapData& h) {
  const int nl = int(h.lengths.size()), nd = int(h.depths.size());
  CHECK(nl > 0 && nd > 0 && h.value.size() == size_t(nl) * size_t(nd),
        "heatmap: {} values for {} lengths × {} depths", h.value.size(), nl, nd);
  const std::string xlabel = "context length (tokens)", ylabel = "depth";
  Image img;
  img.width = std::max(kLeft + nl * kCellW + kRight, 2 * kRight + std::max(text_width(h.title), text_width(xlabel)));
  img.height = kTop + nd * kCellH + kBottom;
  img.rgb.assign(size_t(img.width) * size_t(img.height) * 3, 255);
  Canvas cv(img);
  cv.text((img.width - text_width(h.title)) / 2, 8, h.title, kBlack);
  cv.text(kLeft - 8 - text_width(ylabel), kTop - 4 - kTextH, ylabel, kGrey);
  for (int d = 0; d < nd; ++d) {
    const int y = kTop + d * kCellH;
    cv.text(kLeft - 8 - text_width(depth_label(h.depths[size_t(d)])), y + (kCellH - kTextH) / 2,
            depth_label(h.depths[size_t(d)]), kBlack);
    for (int l = 0; l < nl; ++l) {
      const double a = h.value[size_t(d) * size_t(nl) + size_t(l)];
      const int x = kLeft + l * kCellW;
      cv.fill(x, y, kCellW, kCellH, heat_colour(a));
      cv.fill(x, y, kCellW, 1, kWhite), cv.fill(x, y, 1, kCellH, kWhite);  // grid lines
      cv.text_centred(x + kCellW / 2, y + kCellH / 2, fmt::format("{:.0f}%", 100.0 * a), kBlack);
    }
  }
  const int yb = kTop + nd * kCellH;
  for (int l = 0; l < nl; ++l)
    cv.text_centred(kLeft + l * kCellW + kCellW / 2, yb + 6 + kTextH / 2, length_label(h.lengths[size_t(l)]), kBlack);
  cv.text(kLeft + (nl * kCellW - text_width(xlabel)) / 2, yb + 24, xlabel, kGrey);
  return img;
}

namespace {
// libpng reports errors through a longjmp: the message is kept and turned into an Error after it.
void png_fail(png_structp png, png_const_charp msg) {
  auto* where = static_cast<std::string*>(png_get_error_ptr(png));
  *where = msg ? msg : "unknown libpng error";
  png_longjmp(png, 1);
}
void png_warn(png_structp, png_const_charp) {}
}  // namespace

void write_png(const std::string& path, const Image& img) {
  CHECK(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width) * size_t(img.height) * 3,
        "write_png: a {}×{} image with {} bytes", img.width, img.height, img.rgb.size());
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  CHECK_HINT(f, "check the output directory and its permissions", "cannot create {}: {}", tmp, std::strerror(errno));
  std::string err;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, png_fail, png_warn);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  volatile bool ok = png && info;  // volatile: set after setjmp, read after a longjmp
  if (ok && setjmp(png_jmpbuf(png)) == 0) {
    png_init_io(png, f);
    png_set_IHDR(png, info, png_uint_32(img.width), png_uint_32(img.height), 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < img.height; ++y)
      png_write_row(png, &img.rgb[size_t(y) * size_t(img.width) * 3]);
    png_write_end(png, nullptr);
  } else {
    ok = false;
  }
  png_destroy_write_struct(png ? &png : nullptr, info ? &info : nullptr);
  const bool closed = std::fclose(f) == 0;
  std::error_code ec;
  if (ok && closed) fs::rename(tmp, path, ec);
  if (!ok || !closed || ec) {
    fs::remove(tmp, ec);
    FAIL_ERROR("writing the heatmap {} failed: {}", path,
               !ok ? (err.empty() ? std::string("libpng could not start") : err)
                   : !closed ? std::string(std::strerror(errno)) : ec.message());
  }
}

Image read_png(const std::string& path) {
  png_image pi;
  std::memset(&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  CHECK(png_image_begin_read_from_file(&pi, path.c_str()), "cannot read PNG {}: {}", path, pi.message);
  pi.format = PNG_FORMAT_RGB;
  Image img;
  img.width = int(pi.width), img.height = int(pi.height);
  img.rgb.resize(PNG_IMAGE_SIZE(pi));
  const bool ok = png_image_finish_read(&pi, nullptr, img.rgb.data(), 0, nullptr);
  const std::string msg = pi.message;
  png_image_free(&pi);
  CHECK(ok, "cannot decode PNG {}: {}", path, msg);
  return img;
}

}  // namespace longctx
