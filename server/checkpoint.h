// Job checkpoints on disk: `<dir>/<job>.ckpt` in the model file format
// (common/wire/model_file.h) whose header also holds the job's progress, state
// and times. Writing keeps the previous checkpoint as `<job>.ckpt.prev`, so a
// checkpoint found corrupt (checksum) on reading falls back to the one
// before it. Everything random in a job derives from (seed, round), and the
// optimizer keeps no state across rounds, so model + round + spec is all a
// job needs to resume exactly.
#ifndef IST_SERVER_CHECKPOINT_H_
#define IST_SERVER_CHECKPOINT_H_

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
// the former is missing or corrupt (then `*warning` says why).
absl::StatusOr<ModelFile> ReadCheckpoint(const std::string& dir, const std::string& job_id,
                                         std::string* warning);

// Job ids with a checkpoint (or only a .prev) in `dir`, sorted by job
// number. An unreadable directory is an error naming it.
absl::StatusOr<std::vector<std::string>> ListCheckpointedJobs(const std::string& dir);

}  // namespace ist

#endif  // IST_SERVER_CHECKPOINT_H_
