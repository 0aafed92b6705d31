#include "common/train/compute_threads.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace ist {

void SetComputeThreads(int n) {
  if (n >= 1) openblas_set_num_threads(n);
}

}  // namespace ist
