// Job checkpoints on disk: `<dir>/<job>.ckpt` in the model file format
// (common/wire/model_file.h) whose header also holds the job's progress, state
// and times. Writing keeps the previous checkpoint as `<job>.ckpt.prev`, so a
// checkpoint found corrupt (checksum) on reading falls back to the one
// before it. Everything random in a job derives from (seed, round), and the
// optimizer keeps no state across rounds, so model + round + spec is all a
// job needs to resume exactly.
#ifndef IST_SERVER_CHECKPOINT_H_
#define IST_SERVER_CHECKPOINT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/wire/model_file.h"

namespace ist {

std::string CheckpointPath(const std::string& dir, const std::string& job_id);

// Writes `bytes` (an encoded model file) as the job's checkpoint: temporary
// file, fsync, the current checkpoint renamed to .prev, rename, directory
// fsync. A crash at any point leaves a readable checkpoint or .prev.
absl::Status WriteCheckpoint(const std::string& dir, const std::string& job_id,
                             const std::string& bytes);

// The newest readable checkpoint of the job: `<job>.ckpt`, or `.prev` when
// the former is missing or corrupt (then `*warning` says why). Reads only.
absl::StatusOr<ModelFile> ReadCheckpoint(const std::string& dir, const std::string& job_id,
                                         std::string* warning);

// As ReadCheckpoint, for a coordinator taking the job back at start: each
// copy that exists but cannot be read or decoded is first moved aside
// (MoveAside), so that no later checkpoint overwrites it, and `*warning`
// says so. When neither copy can be read, DataLoss naming both files (as
// moved aside, or the moved-aside files an earlier start left).
absl::StatusOr<ModelFile> RecoverCheckpoint(const std::string& dir, const std::string& job_id,
                                            std::string* warning);

// Renames the file at `path` to `<path>.corrupt`, or `<path>.corrupt.N`
// with the smallest N >= 1 not taken: an existing file is never replaced,
// and nothing is deleted. The new path, or an error naming `path`.
absl::StatusOr<std::string> MoveAside(const std::string& path);

// Job ids with a checkpoint, a .prev or a file moved aside in `dir`, sorted
// by job number. An unreadable directory is an error naming it.
absl::StatusOr<std::vector<std::string>> ListCheckpointedJobs(const std::string& dir);

// The highest N of any file in `dir` named `job-N` or `job-N.<anything>`
// (checkpoints, copies being written, files moved aside); 0 if none. A
// coordinator numbers new jobs after it, so no id is ever reused. An
// unreadable directory is an error naming it.
absl::StatusOr<int64_t> HighestJobNumber(const std::string& dir);

}  // namespace ist

#endif  // IST_SERVER_CHECKPOINT_H_
