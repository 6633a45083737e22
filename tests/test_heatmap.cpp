// test_heatmap.cpp — the needle heatmap (src/eval/heatmap.cpp): a PNG written through libpng, read
// back with libpng: its size, the colour of every cell for known accuracies, the labels, no .tmp
// left behind, and the refusals.
#include <filesystem>
#include <random>

#include "longctx/heatmap.h"
#include "util.h"
#include "catch.h"

using namespace longctx;
namespace fs = std::filesystem;

TEST_CASE("heatmap: colours run red, yellow, green", "[png]") {
  const Rgb red = heat_colour(0.0), mid = heat_colour(0.5), green = heat_colour(1.0);
  CHECK((red.r > 150 && red.g < 100 && red.b < 100));
  CHECK((mid.r > 200 && mid.g > 200 && mid.b < 150));
  CHECK((green.g > 120 && green.r < 60 && green.b < 120));
  CHECK(heat_colour(0.25).g > red.g);  // more green as the accuracy grows
  CHECK(heat_colour(0.75).r < mid.r);
  CHECK(!test::error_of([] { heat_colour(1.5); }).empty());
  CHECK(!test::error_of([] { heat_colour(-0.1); }).empty());
}

TEST_CASE("heatmap: a PNG with one coloured, labelled cell per length and depth", "[png]") {
  std::mt19937_64 rng(test::fresh_seed());
  HeatmapData h;
  h.title = "needle retrieval step 42 theta 1e+06";
  h.lengths = {256, 512, 1024, 4096};
  h.depths = {0.0, 0.25, 0.5, 0.75, 1.0};
  // Fresh accuracies, with the ends of the scale always among them.
  for (size_t i = 0; i < h.lengths.size() * h.depths.size(); ++i)
    h.value.push_back(double(rng() % 17) / 16.0);
  h.value[0] = 0.0, h.value[1] = 1.0, h.value[2] = 0.5;
  const std::string path = test::temp_dir("heatmap") + "/needle.png";
  write_png(path, draw_heatmap(h));
  REQUIRE(fs::exists(path));
  CHECK(!fs::exists(path + ".tmp"));

  const Image img = read_png(path);
  const HeatmapGeometry g = heatmap_geometry();
  const int nl = int(h.lengths.size()), nd = int(h.depths.size());
  CHECK(img.width >= g.x0 + nl * g.cell_w);
  CHECK(img.height > g.y0 + nd * g.cell_h);
  CHECK(img.at(1, 1) == Rgb{255, 255, 255});  // background
  for (int d = 0; d < nd; ++d)
    for (int l = 0; l < nl; ++l) {
      const double v = h.value[size_t(d * nl + l)];
      INFO("depth " << h.depths[size_t(d)] << " length " << h.lengths[size_t(l)] << " accuracy " << v);
      const int x = g.x0 + l * g.cell_w, y = g.y0 + d * g.cell_h;
      // The corners of the cell (inside its 1-pixel grid line) carry the colour, the middle a label.
      CHECK(img.at(x + 3, y + 3) == heat_colour(v));
      CHECK(img.at(x + g.cell_w - 3, y + g.cell_h - 3) == heat_colour(v));
      int dark = 0;
      for (int yy = y; yy < y + g.cell_h; ++yy)
        for (int xx = x; xx < x + g.cell_w; ++xx) dark += img.at(xx, yy) == Rgb{0, 0, 0};
      CHECK(dark > 20);  // "0%" .. "100%" in black
    }
  // Title and axis labels are drawn outside the grid.
  int dark_top = 0, dark_left = 0;
  for (int y = 0; y < g.y0 - 12; ++y)
    for (int x = 0; x < img.width; ++x) dark_top += img.at(x, y) == Rgb{0, 0, 0};
  for (int y = g.y0; y < g.y0 + nd * g.cell_h; ++y)
    for (int x = 0; x < g.x0; ++x) dark_left += img.at(x, y) == Rgb{0, 0, 0};
  CHECK(dark_top > 50);
  CHECK(dark_left > 50);
}

TEST_CASE("heatmap: a report's cells become the grid; bad input is refused", "[png]") {
  NeedleReport rep;
  rep.global_step = 7, rep.rope_theta = 1e4;
  for (int64_t n : {256, 512})
    for (double d : {0.0, 1.0}) {
      NeedleCell c;
      c.length = n, c.depth = d, c.samples = 4, c.retrieved = n == 512 ? 4 : d == 0.0 ? 1 : 0;
      rep.cells.push_back(c);
    }
  const HeatmapData h = heatmap_data(rep);
  REQUIRE(h.lengths == std::vector<int64_t>{256, 512});
  REQUIRE(h.depths == std::vector<double>{0.0, 1.0});
  CHECK(h.value == std::vector<double>{0.25, 1.0, 0.0, 1.0});  // depth-major
  rep.cells.pop_back();
  CHECK(!test::error_of([&] { heatmap_data(rep); }).empty());
  HeatmapData bad = h;
  bad.value.pop_back();
  CHECK(!test::error_of([&] { draw_heatmap(bad); }).empty());
  const std::string msg = test::error_of([&] { write_png("build/tmp/no/such/dir/x.png", draw_heatmap(h)); });
  CHECK(msg.find("no/such/dir/x.png") != std::string::npos);
  CHECK(!test::error_of([] { read_png("build/tmp/no-such.png"); }).empty());
}
