// The key=value prefixes that job-related log lines start with, so logs can
// be filtered by job and round: "job=job-3 round=12 ...".
#ifndef IST_COMMON_BASE_LOG_TAGS_H_
#define IST_COMMON_BASE_LOG_TAGS_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "proto/ist/v1/tensor.pb.h"

namespace ist {

inline std::string JobTag(absl::string_view job_id, int64_t round) {
  return absl::StrCat("job=", job_id, " round=", round);
}

inline std::string SliceTagString(const v1::SliceTag& t) {
  return absl::StrCat(JobTag(t.job_id(), t.round()), " subnet=", t.subnet(),
                      " attempt=", t.attempt());
}

}  // namespace ist

#endif  // IST_COMMON_BASE_LOG_TAGS_H_
