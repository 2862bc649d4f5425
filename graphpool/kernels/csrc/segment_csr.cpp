// CSR segment kernels for CPU: reduce (sum/max/min), extremum backward, broadcast.
//
// Plain C++ with OpenMP and a C ABI: no torch headers, so it compiles in about a second
// and is loaded with ctypes (graphpool/kernels/compiled.py). Tensors arrive as pointers
// with element strides. Inputs are viewed as [L, N, F] (L = flattened leading dims);
// ptr is int64 [B + 1]; outputs are contiguous.
//
// dtype codes: 0 float32, 1 float64, 2 float16, 3 bfloat16. Half types accumulate in
// float32. op codes: 0 sum, 1 max, 2 min. Max/min propagate nan like torch.maximum.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

struct BF16 {
  uint16_t bits;
};

inline float load(float v) { return v; }
inline double load(double v) { return v; }
inline float load(_Float16 v) { return static_cast<float>(v); }
inline float load(BF16 v) {
  uint32_t u = static_cast<uint32_t>(v.bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <typename Out, typename Acc>
inline Out store(Acc v) { return static_cast<Out>(v); }
template <>
inline BF16 store<BF16, float>(float v) {  // exact for values that came from bf16
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return BF16{static_cast<uint16_t>(u >> 16)};
}

template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };

template <int OP, typename Acc>
inline Acc combine(Acc o, Acc v) {
  if (OP == 0) return o + v;
  if (OP == 1) return (v > o || v != v) ? v : o;
  return (v < o || v != v) ? v : o;
}

template <int OP, typename Acc>
inline Acc identity() {
  if (OP == 0) return Acc(0);
  return OP == 1 ? -INFINITY : INFINITY;
}

template <int OP, typename T, typename Acc>
inline void accumulate_rows(const T* base, int64_t begin, int64_t end, int64_t F, int64_t sN,
                            int64_t sF, Acc* acc) {
  for (int64_t r = begin; r < end; ++r) {
    const T* row = base + r * sN;
    if (sF == 1) {
      for (int64_t f = 0; f < F; ++f) acc[f] = combine<OP>(acc[f], load(row[f]));
    } else {
      for (int64_t f = 0; f < F; ++f) acc[f] = combine<OP>(acc[f], load(row[f * sF]));
    }
  }
}

// Split rows [begin, end) into nthreads contiguous chunks; chunk t is [lo, hi).
inline void chunk(int64_t begin, int64_t end, int t, int nthreads, int64_t* lo, int64_t* hi) {
  int64_t n = end - begin, step = (n + nthreads - 1) / nthreads;
  *lo = std::min(end, begin + t * step);
  *hi = std::min(end, *lo + step);
}

template <int OP, typename T, typename Out>
void reduce(const T* x, int64_t L, int64_t F, int64_t sL, int64_t sN, int64_t sF,
            const int64_t* ptr, int64_t B, Out* out, int nthreads) {
  using Acc = typename AccOf<T>::type;
  const int64_t sets = L * B;
  if (sets >= nthreads) {  // many sets: one set per task
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<Acc> acc(F);
#pragma omp for schedule(dynamic, 16)
      for (int64_t s = 0; s < sets; ++s) {
        const int64_t l = s / B, b = s % B;
        std::fill(acc.begin(), acc.end(), identity<OP, Acc>());
        accumulate_rows<OP>(x + l * sL, ptr[b], ptr[b + 1], F, sN, sF, acc.data());
        for (int64_t f = 0; f < F; ++f) out[s * F + f] = store<Out>(acc[f]);
      }
    }
    return;
  }
  // few sets (one huge graph): split each set's rows over the threads, then combine.
  std::vector<Acc> partial(static_cast<size_t>(nthreads) * F);
  for (int64_t s = 0; s < sets; ++s) {
    const int64_t l = s / B, b = s % B;
    std::fill(partial.begin(), partial.end(), identity<OP, Acc>());
#pragma omp parallel num_threads(nthreads)
    {
      const int t = omp_get_thread_num();
      int64_t lo, hi;
      chunk(ptr[b], ptr[b + 1], t, nthreads, &lo, &hi);
      accumulate_rows<OP>(x + l * sL, lo, hi, F, sN, sF, partial.data() + t * F);
    }
    for (int64_t f = 0; f < F; ++f) {
      Acc v = partial[f];
      for (int t = 1; t < nthreads; ++t) v = combine<OP>(v, partial[t * F + f]);
      out[s * F + f] = store<Out>(v);
    }
  }
}

// grad_x[r] = [x_r == y_b] * grad_b / #{u in b : x_u == y_b}, per feature.
template <typename T>
void extremum_backward(const T* x, int64_t L, int64_t N, int64_t F, int64_t sL, int64_t sN,
                       int64_t sF, const int64_t* ptr, int64_t B, const T* y, const T* grad,
                       T* grad_x, int nthreads) {
  using Acc = typename AccOf<T>::type;
  const int64_t sets = L * B;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<Acc> ties(F);
#pragma omp for schedule(dynamic, 16)
    for (int64_t s = 0; s < sets; ++s) {
      const int64_t l = s / B, b = s % B;
      const T* base = x + l * sL;
      const T* ys = y + s * F;
      const T* gs = grad + s * F;
      std::fill(ties.begin(), ties.end(), Acc(0));
      for (int64_t r = ptr[b]; r < ptr[b + 1]; ++r)
        for (int64_t f = 0; f < F; ++f)
          ties[f] += load(base[r * sN + f * sF]) == load(ys[f]) ? Acc(1) : Acc(0);
      for (int64_t f = 0; f < F; ++f) ties[f] = ties[f] > 0 ? load(gs[f]) / ties[f] : Acc(0);
      for (int64_t r = ptr[b]; r < ptr[b + 1]; ++r) {
        T* gr = grad_x + (l * N + r) * F;
        for (int64_t f = 0; f < F; ++f)
          gr[f] = store<T>(load(base[r * sN + f * sF]) == load(ys[f]) ? ties[f] : Acc(0));
      }
    }
  }
}

// out[r] = values[b] for every row r of set b (the adjoint of a sum).
template <typename T>
void broadcast(const T* values, int64_t L, int64_t N, int64_t F, const int64_t* ptr, int64_t B,
               T* out, int nthreads) {
  const int64_t rows = L * N;
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t l = i / N, r = i % N;
    const int64_t b = std::upper_bound(ptr, ptr + B + 1, r) - ptr - 1;
    std::memcpy(out + i * F, values + (l * B + b) * F, F * sizeof(T));
  }
}

template <typename T, typename Out>
void reduce_op(int op, const void* x, int64_t L, int64_t F, int64_t sL, int64_t sN, int64_t sF,
               const int64_t* ptr, int64_t B, void* out, int nthreads) {
  const T* xt = static_cast<const T*>(x);
  if (op == 0) {
    reduce<0>(xt, L, F, sL, sN, sF, ptr, B, static_cast<typename AccOf<T>::type*>(out),
              nthreads);
  } else if (op == 1) {
    reduce<1>(xt, L, F, sL, sN, sF, ptr, B, static_cast<T*>(out), nthreads);
  } else {
    reduce<2>(xt, L, F, sL, sN, sF, ptr, B, static_cast<T*>(out), nthreads);
  }
}

}  // namespace

extern "C" {

int gp_csr_reduce(int dtype, int op, const void* x, int64_t L, int64_t F, int64_t sL,
                  int64_t sN, int64_t sF, const int64_t* ptr, int64_t B, void* out,
                  int nthreads) {
  switch (dtype) {
    case 0: reduce_op<float, float>(op, x, L, F, sL, sN, sF, ptr, B, out, nthreads); return 0;
    case 1: reduce_op<double, double>(op, x, L, F, sL, sN, sF, ptr, B, out, nthreads); return 0;
    case 2: reduce_op<_Float16, _Float16>(op, x, L, F, sL, sN, sF, ptr, B, out, nthreads); return 0;
    case 3: reduce_op<BF16, BF16>(op, x, L, F, sL, sN, sF, ptr, B, out, nthreads); return 0;
  }
  return 1;
}

int gp_csr_extremum_backward(int dtype, const void* x, int64_t L, int64_t N, int64_t F,
                             int64_t sL, int64_t sN, int64_t sF, const int64_t* ptr, int64_t B,
                             const void* y, const void* grad, void* grad_x, int nthreads) {
#define GP_CASE(code, T)                                                                    \
  case code:                                                                                \
    extremum_backward<T>(static_cast<const T*>(x), L, N, F, sL, sN, sF, ptr, B,              \
                         static_cast<const T*>(y), static_cast<const T*>(grad),              \
                         static_cast<T*>(grad_x), nthreads);                                 \
    return 0;
  switch (dtype) { GP_CASE(0, float) GP_CASE(1, double) GP_CASE(2, _Float16) GP_CASE(3, BF16) }
#undef GP_CASE
  return 1;
}

int gp_csr_broadcast(int itemsize, const void* values, int64_t L, int64_t N, int64_t F,
                     const int64_t* ptr, int64_t B, void* out, int nthreads) {
  switch (itemsize) {
    case 2: broadcast(static_cast<const uint16_t*>(values), L, N, F, ptr, B,
                      static_cast<uint16_t*>(out), nthreads); return 0;
    case 4: broadcast(static_cast<const uint32_t*>(values), L, N, F, ptr, B,
                      static_cast<uint32_t*>(out), nthreads); return 0;
    case 8: broadcast(static_cast<const uint64_t*>(values), L, N, F, ptr, B,
                      static_cast<uint64_t*>(out), nthreads); return 0;
  }
  return 1;
}

}  // extern "C"
