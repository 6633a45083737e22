// heatmap.h — the needle-in-a-haystack picture of one evaluation as a PNG (libpng): x = context
// length, y = needle depth (0 at the top, as in the usual plots), colour = retrieval accuracy from
// red (0%) through yellow (50%) to green (100%), each cell labelled with its percentage in a small
// built-in bitmap font, a title line above and the axis labels around the grid.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longctx/eval.h"

namespace longctx {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  bool operator==(const Rgb&) const = default;
};

// The colour of an accuracy in [0, 1] (values outside are refused): red -> yellow -> green.
Rgb heat_colour(double accuracy);

// Accuracies per cell, depth-major: value[d * lengths.size() + l] for depths[d], lengths[l].
struct HeatmapData {
  std::string title;  // upper case is drawn as is, lower case as upper case
  std::vector<int64_t> lengths;
  std::vector<double> depths;
  std::vector<double> value;
};

// A picture as 8-bit RGB rows, top to bottom.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // width * height * 3
  Rgb at(int x, int y) const;
};

// Where the cells are in the picture: cell (d, l) is [x0 + l*cell_w, +cell_w) × [y0 + d*cell_h, +cell_h).
struct HeatmapGeometry {
  int x0 = 0, y0 = 0, cell_w = 0, cell_h = 0;
};
HeatmapGeometry heatmap_geometry();

// The data of a report: accuracy = retrieved / samples of each cell (report order: length-major).
HeatmapData heatmap_data(const NeedleReport& rep);
Image draw_heatmap(const HeatmapData& data);
// Writes the picture as PNG to path.tmp, then renames it to path (never a half-written path).
void write_png(const std::string& path, const Image& img);
// Reads a PNG into 8-bit RGB (for tests and tools).
Image read_png(const std::string& path);

}  // namespace longctx
