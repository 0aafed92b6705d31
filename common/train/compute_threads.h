// How many threads the math may use. Large products run in OpenBLAS, which
// owns its thread pool; this sets its size for the whole process.
#ifndef IST_COMMON_TRAIN_COMPUTE_THREADS_H_
#define IST_COMMON_TRAIN_COMPUTE_THREADS_H_

namespace ist {

// n >= 1: use n threads; n <= 0: leave OpenBLAS's default (all cores, or
// OPENBLAS_NUM_THREADS).
void SetComputeThreads(int n);

}  // namespace ist

#endif  // IST_COMMON_TRAIN_COMPUTE_THREADS_H_
