// preflight.h — before any work, every place a command will write is checked writable, so that a
// bad path is refused at the start (naming its deck key), not found after hours of training.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <mpi.h>

#include "longctx/config.h"

namespace longctx {

// One place a command writes: `what` names it for a person ("run.out_dir = 'runs/x'"), `dir` says
// whether it is a directory (created if missing) or a file (appended to or created), `hint` what to do.
struct OutputPath {
  std::string what, path;
  bool dir = false;
  std::string hint;
};

// train: run.out_dir, checkpoint.dir, <out_dir>/metrics.jsonl. eval: run.out_dir and
// <out_dir>/needle_eval.jsonl.
std::vector<OutputPath> train_outputs(const Config& cfg);
std::vector<OutputPath> eval_outputs(const Config& cfg);

// Collective over comm. Rank 0, then the first rank of every other node, creates each missing
// directory and proves each place writable (a probe file created and removed; an existing file
// opened for appending, left unchanged); the lowest failing rank's verdict is broadcast and every
// rank throws the same Error (marked alike: printed once), naming the place, the path and the OS
// reason.
void preflight_outputs(const std::vector<OutputPath>& outs, MPI_Comm comm);

// std::filesystem::create_directories(path), whose failure throws an Error naming `key`:
// "run.out_dir = '/x/y': cannot create directory: Permission denied" and a hint.
void create_directories_for(const std::string& key, const std::string& path);

// Writes `bytes` as path.tmp, then renames it to `path`: the path holds the whole file or is left
// as it was (the .tmp removed on any failure, and an Error naming `path` thrown).
void write_whole_file(const std::string& path, std::string_view bytes);

}  // namespace longctx
