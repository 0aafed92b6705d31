// The layers of the convolutional engine, each a forward and a backward pass
// over a whole batch. An activation is a row-major (channels) x (N*H*W)
// matrix: row c holds channel c of sample 0, then sample 1, ..., each
// sample's pixels in row-major (y, x) order. So one channel is contiguous,
// BatchNorm2d works row by row, and a convolution over the whole batch is
// one im2col and ONE large GEMM (no per-sample small products).
//
// Layers keep what their backward pass needs (im2col columns, normalised
// values, arg-max positions) between Forward and Backward. Not thread-safe.
#ifndef IST_COMMON_TRAIN_CNN_LAYERS_H_
#define IST_COMMON_TRAIN_CNN_LAYERS_H_

#include <cstdint>
#include <vector>

#include "Eigen/Core"
#include "glog/logging.h"

namespace ist {

// Spatial shape of an activation (the channel count is its row count).
struct ImageGeom {
  int n = 0, h = 0, w = 0;
  int64_t pixels() const { return int64_t{n} * h * w; }
};

template <typename T>
using ActMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// 2-D convolution without bias, square kernel k, zero padding `pad`.
// Weight: out_channels x (in_channels * k * k), column c*k*k + ky*k + kx.
template <typename T>
class Conv2dLayer {
 public:
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  using Act = ActMatrix<T>;
  Conv2dLayer(int k, int stride, int pad) : k_(k), stride_(stride), pad_(pad) {}

  static int OutSize(int in, int k, int stride, int pad) {
    return (in + 2 * pad - k) / stride + 1;
  }

  // out = conv(in); *out_geom receives the output shape.
  void Forward(const Matrix& w, const Act& in, const ImageGeom& g, Act* out,
               ImageGeom* out_geom) {
    CHECK_EQ(w.cols(), in.rows() * k_ * k_);
    CHECK_EQ(in.cols(), g.pixels());
    in_geom_ = g;
    out_geom_ = {g.n, OutSize(g.h, k_, stride_, pad_), OutSize(g.w, k_, stride_, pad_)};
    *out_geom = out_geom_;
    Im2Col(in);
    out->resize(w.rows(), out_geom_.pixels());
    out->noalias() = w * cols_;
  }

  // From dout (out_channels x output pixels): *dw = d/dw; *din = d/din
  // (skipped when din is nullptr).
  void Backward(const Matrix& w, const Act& dout, Matrix* dw, Act* din) {
    dw->resize(w.rows(), w.cols());
    dw->noalias() = dout * cols_.transpose();
    if (din == nullptr) return;
    dcols_.resize(cols_.rows(), cols_.cols());
    dcols_.noalias() = w.transpose() * dout;
    Col2Im(w.cols() / (k_ * k_), din);
  }

 private:
  void Im2Col(const Act& in) {
    const int cin = static_cast<int>(in.rows());
    const ImageGeom& g = in_geom_;
    const ImageGeom& o = out_geom_;
    cols_.resize(int64_t{cin} * k_ * k_, o.pixels());
    for (int c = 0; c < cin; ++c) {
      for (int ky = 0; ky < k_; ++ky) {
        for (int kx = 0; kx < k_; ++kx) {
          T* dst = cols_.row((int64_t{c} * k_ + ky) * k_ + kx).data();
          for (int n = 0; n < g.n; ++n) {
            const T* src = in.row(c).data() + int64_t{n} * g.h * g.w;
            for (int oy = 0; oy < o.h; ++oy) {
              const int iy = oy * stride_ + ky - pad_;
              if (iy < 0 || iy >= g.h) {
                for (int ox = 0; ox < o.w; ++ox) *dst++ = T(0);
                continue;
              }
              const T* srow = src + int64_t{iy} * g.w;
              for (int ox = 0; ox < o.w; ++ox) {
                const int ix = ox * stride_ + kx - pad_;
                *dst++ = (ix >= 0 && ix < g.w) ? srow[ix] : T(0);
              }
            }
          }
        }
      }
    }
  }

  void Col2Im(int cin, Act* din) {
    const ImageGeom& g = in_geom_;
    const ImageGeom& o = out_geom_;
    din->setZero(cin, g.pixels());
    for (int c = 0; c < cin; ++c) {
      for (int ky = 0; ky < k_; ++ky) {
        for (int kx = 0; kx < k_; ++kx) {
          const T* src = dcols_.row((int64_t{c} * k_ + ky) * k_ + kx).data();
          for (int n = 0; n < g.n; ++n) {
            T* dst = din->row(c).data() + int64_t{n} * g.h * g.w;
            for (int oy = 0; oy < o.h; ++oy) {
              const int iy = oy * stride_ + ky - pad_;
              if (iy < 0 || iy >= g.h) {
                src += o.w;
                continue;
              }
              T* drow = dst + int64_t{iy} * g.w;
              for (int ox = 0; ox < o.w; ++ox, ++src) {
                const int ix = ox * stride_ + kx - pad_;
                if (ix >= 0 && ix < g.w) drow[ix] += *src;
              }
            }
          }
        }
      }
    }
  }

  int k_, stride_, pad_;
  ImageGeom in_geom_, out_geom_;
  Act cols_, dcols_;
};

// BatchNorm2d: per channel (row), over all N*H*W values of the batch.
template <typename T>
class BatchNorm2dLayer {
 public:
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  using Act = ActMatrix<T>;

  // out = gamma * (in - mean) / sqrt(var + eps) + beta, with the batch's
  // mean and biased variance when use_batch_stats (then also kept in
  // batch_mean()/batch_var()), else `running_mean`/`running_var`.
  void Forward(const Matrix& gamma, const Matrix& beta, const Act& in, T eps,
               bool use_batch_stats, const Matrix* running_mean,
               const Matrix* running_var, Act* out) {
    const Eigen::Index p = in.cols();
    if (use_batch_stats) {
      mean_ = in.rowwise().mean();
      xhat_ = in.colwise() - mean_;
      var_ = xhat_.array().square().rowwise().sum().matrix() / T(p);
      inv_std_ = (var_.array() + eps).rsqrt().matrix();
    } else {
      mean_ = *running_mean;
      xhat_ = in.colwise() - mean_;
      inv_std_ = (running_var->array() + eps).rsqrt().matrix();
    }
    xhat_.array().colwise() *= inv_std_.array();
    out->resize(in.rows(), p);
    out->array() = (xhat_.array().colwise() * gamma.col(0).array()).colwise() +
                   beta.col(0).array();
  }

  // Training-mode backward (batch statistics).
  void Backward(const Matrix& gamma, const Act& dout, Matrix* dgamma,
                Matrix* dbeta, Act* din) {
    const T p = static_cast<T>(dout.cols());
    *dgamma = (dout.array() * xhat_.array()).rowwise().sum().matrix();
    *dbeta = dout.rowwise().sum();
    // dxhat = dout * gamma; din = inv_std * (dxhat - mean(dxhat) -
    // xhat * mean(dxhat * xhat)) per row.
    const Vector g_mean = (dbeta->col(0).array() * gamma.col(0).array()).matrix() / p;
    const Vector gx_mean = (dgamma->col(0).array() * gamma.col(0).array()).matrix() / p;
    din->resize(dout.rows(), dout.cols());
    din->array() = ((dout.array().colwise() * gamma.col(0).array()).colwise() -
                    g_mean.array() -
                    xhat_.array().colwise() * gx_mean.array())
                       .colwise() *
                   inv_std_.array();
  }

  const Vector& batch_mean() const { return mean_; }
  const Vector& batch_var() const { return var_; }

 private:
  Act xhat_;
  Vector mean_, var_, inv_std_;
};

// In place: x = max(x, 0). Backward masks with the forward output.
template <typename T>
void ReluForward(ActMatrix<T>* x) { x->array() = x->array().max(T(0)); }

template <typename T>
void ReluBackward(const ActMatrix<T>& out, ActMatrix<T>* grad) {
  grad->array() *= (out.array() > T(0)).template cast<T>();
}

// k x k pooling with stride k, no padding (a trailing remainder of rows or
// columns is dropped). kMax keeps the arg-max (first on ties) of each window.
template <typename T>
class Pool2dLayer {
 public:
  using Act = ActMatrix<T>;
  enum Kind { kMax, kAverage };
  Pool2dLayer(Kind kind, int k) : kind_(kind), k_(k) {}

  void Forward(const Act& in, const ImageGeom& g, Act* out, ImageGeom* og) {
    in_geom_ = g;
    *og = {g.n, g.h / k_, g.w / k_};
    out_geom_ = *og;
    const Eigen::Index channels = in.rows();
    out->resize(channels, og->pixels());
    if (kind_ == kMax) argmax_.resize(channels * og->pixels());
    const T inv = T(1) / T(k_ * k_);
    for (Eigen::Index c = 0; c < channels; ++c) {
      const T* src = in.row(c).data();
      T* dst = out->row(c).data();
      for (int n = 0; n < g.n; ++n) {
        for (int oy = 0; oy < og->h; ++oy) {
          for (int ox = 0; ox < og->w; ++ox) {
            const int64_t o = (int64_t{n} * og->h + oy) * og->w + ox;
            const int64_t base = (int64_t{n} * g.h + oy * k_) * g.w + ox * k_;
            if (kind_ == kMax) {
              int64_t best = base;
              for (int dy = 0; dy < k_; ++dy)
                for (int dx = 0; dx < k_; ++dx) {
                  const int64_t i = base + int64_t{dy} * g.w + dx;
                  if (src[i] > src[best]) best = i;
                }
              dst[o] = src[best];
              argmax_[c * og->pixels() + o] = best;
            } else {
              T sum = 0;
              for (int dy = 0; dy < k_; ++dy)
                for (int dx = 0; dx < k_; ++dx) sum += src[base + int64_t{dy} * g.w + dx];
              dst[o] = sum * inv;
            }
          }
        }
      }
    }
  }

  void Backward(const Act& dout, Act* din) {
    const ImageGeom& g = in_geom_;
    const ImageGeom& og = out_geom_;
    din->setZero(dout.rows(), g.pixels());
    const T inv = T(1) / T(k_ * k_);
    for (Eigen::Index c = 0; c < dout.rows(); ++c) {
      const T* src = dout.row(c).data();
      T* dst = din->row(c).data();
      for (int64_t o = 0; o < og.pixels(); ++o) {
        if (kind_ == kMax) {
          dst[argmax_[c * og.pixels() + o]] += src[o];
        } else {
          const int n = static_cast<int>(o / (int64_t{og.h} * og.w));
          const int oy = static_cast<int>(o / og.w % og.h);
          const int ox = static_cast<int>(o % og.w);
          const int64_t base = (int64_t{n} * g.h + oy * k_) * g.w + ox * k_;
          for (int dy = 0; dy < k_; ++dy)
            for (int dx = 0; dx < k_; ++dx) dst[base + int64_t{dy} * g.w + dx] += src[o] * inv;
        }
      }
    }
  }

 private:
  Kind kind_;
  int k_;
  ImageGeom in_geom_, out_geom_;
  std::vector<int64_t> argmax_;
};

// Global average pooling: (C x N*H*W) -> (C x N), column n = sample n.
template <typename T>
void GlobalAvgPoolForward(const ActMatrix<T>& in, const ImageGeom& g,
                          ActMatrix<T>* out) {
  const int64_t hw = int64_t{g.h} * g.w;
  out->resize(in.rows(), g.n);
  for (Eigen::Index c = 0; c < in.rows(); ++c)
    for (int n = 0; n < g.n; ++n)
      (*out)(c, n) = in.row(c).segment(n * hw, hw).sum() / T(hw);
}

template <typename T>
void GlobalAvgPoolBackward(const ActMatrix<T>& dout, const ImageGeom& g,
                           ActMatrix<T>* din) {
  const int64_t hw = int64_t{g.h} * g.w;
  din->resize(dout.rows(), g.pixels());
  for (Eigen::Index c = 0; c < dout.rows(); ++c)
    for (int n = 0; n < g.n; ++n)
      din->row(c).segment(n * hw, hw).setConstant(dout(c, n) / T(hw));
}

}  // namespace ist

#endif  // IST_COMMON_TRAIN_CNN_LAYERS_H_
