// test_groups.cpp — the log's map of ranks to GPUs (describe_gpu_map, groups.h).
#include "catch.h"
#include "longctx/groups.h"

using namespace longctx;

TEST_CASE("the GPU map names each node's GPUs with their ranks, in rank order", "[groups]") {
  // One rank on one GPU.
  CHECK(describe_gpu_map({"n01"}, {0}) == "GPUs: n01 GPU 0 ← rank 0");
  // Four ranks sharing one GPU (the MPI transport's case), then two nodes of two GPUs each whose
  // ranks are not in node order: node n02 holds ranks 1 and 3.
  CHECK(describe_gpu_map({"a", "a", "a", "a"}, {0, 0, 0, 0}) == "GPUs: a GPU 0 ← ranks 0-3");
  CHECK(describe_gpu_map({"n01", "n02", "n01", "n02"}, {0, 0, 1, 1}) ==
        "GPUs: n01 GPU 0 ← rank 0, GPU 1 ← rank 2 | n02 GPU 0 ← rank 1, GPU 1 ← rank 3");
  // Non-consecutive ranks on one GPU, and GPUs listed by index whatever the ranks' order.
  CHECK(describe_gpu_map({"h", "h", "h", "h", "h"}, {1, 0, 1, 0, 1}) == "GPUs: h GPU 0 ← ranks 1, 3, GPU 1 ← ranks 0, 2, 4");
  // Past max_nodes the rest are counted.
  CHECK(describe_gpu_map({"a", "b", "c", "d"}, {0, 0, 0, 0}, 2) == "GPUs: a GPU 0 ← rank 0 | b GPU 0 ← rank 1 | … 2 more nodes");
  CHECK_THROWS_WITH(describe_gpu_map({"a"}, {0, 1}), Catch::Matchers::Contains("1 host names for 2 ranks"));
}
