// CSR segment kernels for CPU: reduce (sum/max/min), extremum backward, broadcast.
//
// Plain C++ with OpenMP and a C ABI: no torch headers, so it compiles in about a second
// and is loaded with ctypes (graphpool/kernels/compiled.py). Tensors arrive as pointers
// with element strides. Inputs are viewed as [L, N, F] (L = flattened leading dims);
// ptr is int64 [B + 1]; outputs are contiguous.
//
// dtype codes: 0 float32, 1 float64, 2 float16, 3 bfloat16. Half types accumulate in
// float32. op codes: 0 sum, 1 max, 2 min, 3 mean (the sum divided by the set's row count
// when it has rows). Max/min propagate nan like torch.maximum.
//
// gp_scatter_*: the same reductions for an unsorted set index (int64 [N]).
// gp_csr_moments(_backward): the centred first and second moments of each set (the
// variance readouts), float32/float64.
// gp_csr_power_mean(_backward): the power mean's scale and inner mean for p = 1, 2, 3.
// gp_csr_broadcast(_mean): each set's row to the rows of the set (the adjoint of a sum),
// divided by the set's row count for the mean.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
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
inline BF16 store<BF16, float>(float v) {  // round to nearest even, as torch does
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return BF16{static_cast<uint16_t>((u >> 16) | 0x40u)};
  u += 0x7fffu + ((u >> 16) & 1u);
  return BF16{static_cast<uint16_t>(u >> 16)};
}

template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };

template <int OP, typename Acc>
inline Acc combine(Acc o, Acc v) {
  if (OP == 0 || OP == 3) return o + v;
  if (OP == 1) return (v > o || v != v) ? v : o;
  return (v < o || v != v) ? v : o;
}

template <int OP, typename Acc>
inline Acc identity() {
  if (OP == 0 || OP == 3) return Acc(0);
  return OP == 1 ? -INFINITY : INFINITY;
}

// W = 256 / sizeof(Acc) accumulators (a block of features) as eight 32-byte vectors, for
// x of the accumulator type (float32, float64) with contiguous features: fixed-size
// vectors stay in registers while rows stream by, where an array of W is stored and
// reloaded for every row. Sums: lane by lane the same additions as combine(), so the same
// bits. Max/min: `v > a ? v : a` (one vmaxps) keeps a's nan but drops v's, so the lanes
// also add up the rows (one vaddps; any nan makes that sum nan, as can inf - inf); where
// it is nan, exact() is false and the caller folds the block again with combine(), whose
// result (the last nan) every path returns. Rare: a nan, or +inf and -inf in one column.
constexpr bool in_lanes(int op, bool same_type) { return same_type && op >= 0 && op <= 3; }

template <int OP, typename Acc>
struct Lanes {
  typedef Acc V __attribute__((vector_size(32)));
  static constexpr int64_t PER = 32 / sizeof(Acc), NV = 8;
  static_assert(PER * NV * sizeof(Acc) == 256, "a block is the kernels' W accumulators");
  static constexpr bool SUM = OP == 0 || OP == 3;
  V a[NV], check[NV];
  explicit Lanes(const Acc* from) {
    for (int64_t k = 0; k < NV; ++k) {
      std::memcpy(&a[k], from + k * PER, 32);
      check[k] = V{};
    }
  }
  Lanes() {
    for (int64_t k = 0; k < NV; ++k) {
      a[k] = V{} + identity<OP, Acc>();
      check[k] = V{};
    }
  }
  inline void fold(const Acc* __restrict row) {
    for (int64_t k = 0; k < NV; ++k) {
      V v;
      std::memcpy(&v, row + k * PER, 32);
      if constexpr (SUM) {
        a[k] += v;
      } else {
        a[k] = (OP == 1 ? v > a[k] : v < a[k]) ? v : a[k];
        check[k] += v;
      }
    }
  }
  inline bool exact() const {
    if constexpr (SUM) return true;
    auto nan = check[0] != check[0];
    for (int64_t k = 1; k < NV; ++k) nan |= check[k] != check[k];
    for (int64_t j = 0; j < PER; ++j)
      if (nan[j]) return false;
    return true;
  }
  inline void store(Acc* to) const {
    for (int64_t k = 0; k < NV; ++k) std::memcpy(to + k * PER, &a[k], 32);
  }
};

// Combine rows [begin, end) into acc[0:F]. Features go in blocks of W that stay in
// registers while the rows stream by; each element of x is read once.
template <int OP, typename T, typename Acc>
inline void accumulate_rows(const T* __restrict base, int64_t begin, int64_t end, int64_t F,
                            int64_t sN, int64_t sF, Acc* __restrict acc) {
  constexpr int64_t W = 256 / sizeof(Acc);
  int64_t f0 = 0;
  if (sF == 1) {
    for (; f0 + W <= F; f0 += W) {
      if constexpr (in_lanes(OP, std::is_same<T, Acc>::value)) {
        Lanes<OP, Acc> a(acc + f0);
        for (int64_t r = begin; r < end; ++r) a.fold(base + r * sN + f0);
        if (a.exact()) {
          a.store(acc + f0);
          continue;
        }
      }
      Acc a[W];
      for (int64_t k = 0; k < W; ++k) a[k] = acc[f0 + k];
      for (int64_t r = begin; r < end; ++r) {
        const T* __restrict row = base + r * sN + f0;
        for (int64_t k = 0; k < W; ++k) a[k] = combine<OP>(a[k], load(row[k]));
      }
      for (int64_t k = 0; k < W; ++k) acc[f0 + k] = a[k];
    }
  }
  for (int64_t r = begin; r < end; ++r) {  // the remaining features, any stride
    const T* __restrict row = base + r * sN;
    for (int64_t f = f0; f < F; ++f) acc[f] = combine<OP>(acc[f], load(row[f * sF]));
  }
}

// The arithmetic is fixed by the data, never by the thread count: a set is folded in
// chunks of CHUNK rows (rows in order inside a chunk), then the chunk results are folded
// in order. Sets are spread over threads, and so are the chunks of a set when there are
// fewer sets than threads; either way every result is bitwise reproducible.
constexpr int64_t CHUNK = 4096;

inline int64_t num_chunks(int64_t begin, int64_t end) {
  return std::max<int64_t>(1, (end - begin + CHUNK - 1) / CHUNK);
}

template <int OP, typename Acc>
inline void fold_into(Acc* acc, const Acc* part, int64_t F) {
  for (int64_t f = 0; f < F; ++f) acc[f] = combine<OP>(acc[f], part[f]);
}

// Mean: divide (not multiply by a reciprocal, to match torch's division bit for bit).
template <int OP, typename Acc>
inline void finalize(Acc* acc, int64_t count, int64_t F) {
  if (OP != 3 || count == 0) return;
  for (int64_t f = 0; f < F; ++f) acc[f] /= static_cast<Acc>(count);
}

// One set, sequentially: acc = fold over chunks of (fold over rows of the chunk).
template <int OP, typename T, typename Acc>
inline void reduce_set(const T* base, int64_t begin, int64_t end, int64_t F, int64_t sN,
                       int64_t sF, Acc* acc, Acc* part) {
  std::fill(acc, acc + F, identity<OP, Acc>());
  for (int64_t c0 = begin; c0 < end; c0 += CHUNK) {
    const int64_t c1 = std::min(end, c0 + CHUNK);
    if (c0 == begin) {
      accumulate_rows<OP>(base, c0, c1, F, sN, sF, acc);
    } else {
      std::fill(part, part + F, identity<OP, Acc>());
      accumulate_rows<OP>(base, c0, c1, F, sN, sF, part);
      fold_into<OP>(acc, part, F);
    }
  }
}

template <int OP, typename T, typename Out>
void reduce(const T* x, int64_t L, int64_t F, int64_t sL, int64_t sN, int64_t sF,
            const int64_t* ptr, int64_t B, Out* out, int nthreads) {
  using Acc = typename AccOf<T>::type;
  const int64_t sets = L * B;
  if (sets >= nthreads) {  // many sets: one set per task
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<Acc> acc(F), part(F);
#pragma omp for schedule(dynamic, 16)
      for (int64_t s = 0; s < sets; ++s) {
        const int64_t l = s / B, b = s % B;
        reduce_set<OP>(x + l * sL, ptr[b], ptr[b + 1], F, sN, sF, acc.data(), part.data());
        finalize<OP>(acc.data(), ptr[b + 1] - ptr[b], F);
        for (int64_t f = 0; f < F; ++f) out[s * F + f] = store<Out>(acc[f]);
      }
    }
    return;
  }
  // few sets (one huge graph): the chunks of each set go to the threads.
  for (int64_t s = 0; s < sets; ++s) {
    const int64_t l = s / B, b = s % B, begin = ptr[b], end = ptr[b + 1];
    const int64_t chunks = num_chunks(begin, end);
    std::vector<Acc> parts(chunks * F, identity<OP, Acc>());
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t c = 0; c < chunks; ++c)
      accumulate_rows<OP>(x + l * sL, begin + c * CHUNK, std::min(end, begin + (c + 1) * CHUNK),
                          F, sN, sF, parts.data() + c * F);
    for (int64_t c = 1; c < chunks; ++c) fold_into<OP>(parts.data(), parts.data() + c * F, F);
    finalize<OP>(parts.data(), end - begin, F);
    for (int64_t f = 0; f < F; ++f) out[s * F + f] = store<Out>(parts[f]);
  }
}

// grad_x[r] = [x_r == y_b] * grad_b / #{u in b : x_u == y_b}, per feature. Tie counts
// are small integers, exact in any order.
template <typename T>
inline void count_ties(const T* base, int64_t begin, int64_t end, int64_t F, int64_t sN,
                       int64_t sF, const T* ys, typename AccOf<T>::type* ties) {
  using Acc = typename AccOf<T>::type;
  for (int64_t r = begin; r < end; ++r)
    for (int64_t f = 0; f < F; ++f)
      ties[f] += load(base[r * sN + f * sF]) == load(ys[f]) ? Acc(1) : Acc(0);
}

template <typename T>
inline void write_grad(const T* base, int64_t begin, int64_t end, int64_t F, int64_t sN,
                       int64_t sF, const T* ys, const typename AccOf<T>::type* share, T* gx) {
  using Acc = typename AccOf<T>::type;
  for (int64_t r = begin; r < end; ++r)
    for (int64_t f = 0; f < F; ++f)
      gx[r * F + f] = store<T>(load(base[r * sN + f * sF]) == load(ys[f]) ? share[f] : Acc(0));
}

template <typename T>
void extremum_backward(const T* x, int64_t L, int64_t N, int64_t F, int64_t sL, int64_t sN,
                       int64_t sF, const int64_t* ptr, int64_t B, const T* y, const T* grad,
                       T* grad_x, int nthreads) {
  using Acc = typename AccOf<T>::type;
  const int64_t sets = L * B;
  auto share_of = [&](int64_t s, Acc* ties) {  // ties -> gradient share per tied row
    for (int64_t f = 0; f < F; ++f) ties[f] = ties[f] > 0 ? load(grad[s * F + f]) / ties[f] : Acc(0);
  };
  if (sets >= nthreads) {
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<Acc> ties(F);
#pragma omp for schedule(dynamic, 16)
      for (int64_t s = 0; s < sets; ++s) {
        const int64_t l = s / B, b = s % B;
        std::fill(ties.begin(), ties.end(), Acc(0));
        count_ties(x + l * sL, ptr[b], ptr[b + 1], F, sN, sF, y + s * F, ties.data());
        share_of(s, ties.data());
        write_grad(x + l * sL, ptr[b], ptr[b + 1], F, sN, sF, y + s * F, ties.data(),
                   grad_x + l * N * F);
      }
    }
    return;
  }
  for (int64_t s = 0; s < sets; ++s) {
    const int64_t l = s / B, b = s % B, begin = ptr[b], end = ptr[b + 1];
    const int64_t chunks = num_chunks(begin, end);
    std::vector<Acc> parts(chunks * F, Acc(0));
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t c = 0; c < chunks; ++c)
      count_ties(x + l * sL, begin + c * CHUNK, std::min(end, begin + (c + 1) * CHUNK), F, sN,
                 sF, y + s * F, parts.data() + c * F);
    for (int64_t c = 1; c < chunks; ++c)
      for (int64_t f = 0; f < F; ++f) parts[f] += parts[c * F + f];
    share_of(s, parts.data());
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t c = 0; c < chunks; ++c)
      write_grad(x + l * sL, begin + c * CHUNK, std::min(end, begin + (c + 1) * CHUNK), F, sN,
                 sF, y + s * F, parts.data(), grad_x + l * N * F);
  }
}

// out[r] = values[b] for every row r of set b (the adjoint of a sum).
template <typename T>
void broadcast(const T* values, int64_t L, int64_t N, int64_t F, const int64_t* ptr, int64_t B,
               T* out, int nthreads) {
  if (L * B >= 4 * nthreads) {  // many sets: one set per task, its rows in order
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t s = 0; s < L * B; ++s) {
      const int64_t l = s / B, b = s % B;
      T* o = out + (l * N + ptr[b]) * F;
      for (int64_t r = ptr[b]; r < ptr[b + 1]; ++r, o += F)
        std::memcpy(o, values + s * F, F * sizeof(T));
    }
    return;
  }
  const int64_t rows = L * N;  // few sets: the rows go to the threads
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t l = i / N, r = i % N;
    const int64_t b = std::upper_bound(ptr, ptr + B + 1, r) - ptr - 1;
    std::memcpy(out + i * F, values + (l * B + b) * F, F * sizeof(T));
  }
}

// One row of the mean's adjoint, float32/float64: dst = src / n, the bits of torch's
// division by the count converted to T (half types are not taken: torch converts the
// count to the half type, which rounds it, or multiplies by a reciprocal).
template <typename T>
inline void divide_row(const T* src, int64_t n, int64_t F, T* dst) {
  const T d = static_cast<T>(n);
  for (int64_t f = 0; f < F; ++f) dst[f] = src[f] / d;
}

// out[r] = values[b] / n_b for every row r of set b (the adjoint of a mean; sets without
// rows write nothing): each set's quotient is computed once, into its first row.
template <typename T>
void broadcast_mean(const T* values, int64_t L, int64_t N, int64_t F, const int64_t* ptr,
                    int64_t B, T* out, int nthreads) {
  if (L * B >= 4 * nthreads) {  // many sets: one set per task, its rows in order
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t s = 0; s < L * B; ++s) {
      const int64_t l = s / B, b = s % B;
      if (ptr[b + 1] == ptr[b]) continue;
      T* first = out + (l * N + ptr[b]) * F;
      divide_row(values + s * F, ptr[b + 1] - ptr[b], F, first);
      T* o = first + F;
      for (int64_t r = ptr[b] + 1; r < ptr[b + 1]; ++r, o += F)
        std::memcpy(o, first, F * sizeof(T));
    }
    return;
  }
  const int64_t rows = L * N;  // few sets: the rows go to the threads
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t l = i / N, r = i % N;
    const int64_t b = std::upper_bound(ptr, ptr + B + 1, r) - ptr - 1;
    divide_row(values + (l * B + b) * F, ptr[b + 1] - ptr[b], F, out + i * F);
  }
}

// Unsorted index: row r folds into set index[r]. The threads split the features into
// blocks of whole cache lines and each reads its columns of every row in order, so each
// (set, feature) folds its rows in row order, whatever the thread count; x streams and
// the [B, F] output (usually cache-resident) takes the random accesses. Ids outside
// [0, B) are skipped and reported: nothing outside the buffers is read or written.
// Output rows are prefetched this many messages ahead (they miss the cache when the
// output does not fit in it: message passing into many nodes).
constexpr int64_t PREFETCH = 16;

struct FeatureBlocks {
  int64_t line, lines, count;
  FeatureBlocks(int64_t F, int64_t itemsize, int nthreads)
      : line(std::max<int64_t>(1, 64 / itemsize)), lines((F + line - 1) / line),
        count(std::max<int64_t>(1, std::min<int64_t>(nthreads, lines))) {}
  int64_t begin(int64_t k, int64_t F) const { return std::min(F, lines * k / count * line); }
  int64_t end(int64_t k, int64_t F) const { return std::min(F, lines * (k + 1) / count * line); }
};

template <int OP, typename T, typename Out>
int scatter_reduce(const T* x, int64_t L, int64_t N, int64_t F, int64_t sL, int64_t sN,
                   int64_t sF, const int64_t* index, int64_t B, Out* out, int nthreads) {
  using Acc = typename AccOf<T>::type;
  const FeatureBlocks blocks(F, sizeof(T), nthreads);
  std::vector<Acc> tmp;
  Acc* acc;
  if constexpr (std::is_same<Out, Acc>::value) {
    acc = out;
  } else {
    tmp.resize(L * B * F);
    acc = tmp.data();
  }
  int bad = 0;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(| : bad)
  for (int64_t t = 0; t < L * blocks.count; ++t) {
    const int64_t l = t / blocks.count, f0 = blocks.begin(t % blocks.count, F),
                  f1 = blocks.end(t % blocks.count, F);
    Acc* __restrict o = acc + l * B * F;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t f = f0; f < f1; ++f) o[b * F + f] = identity<OP, Acc>();
    const T* xl = x + l * sL;
    for (int64_t r = 0; r < N; ++r) {
      const int64_t b = index[r];
      if (r + PREFETCH < N) {  // the output row of a later message: a random access
        const int64_t ahead = index[r + PREFETCH];
        if (ahead >= 0 && ahead < B)
          for (int64_t f = f0; f < f1; f += 64 / sizeof(Acc))
            __builtin_prefetch(o + ahead * F + f, 1);
      }
      if (b < 0 || b >= B) { bad = 1; continue; }
      const T* __restrict row = xl + r * sN;
      Acc* __restrict dst = o + b * F;
      if (sF == 1) {
        for (int64_t f = f0; f < f1; ++f) dst[f] = combine<OP>(dst[f], load(row[f]));
      } else {
        for (int64_t f = f0; f < f1; ++f) dst[f] = combine<OP>(dst[f], load(row[f * sF]));
      }
    }
  }
  if (OP == 3) {  // mean: divide by the rows of each set (as in finalize)
    std::vector<int64_t> counts(B, 0);
    for (int64_t r = 0; r < N; ++r)
      if (index[r] >= 0 && index[r] < B) ++counts[index[r]];
    for (int64_t l = 0; l < L; ++l)
      for (int64_t b = 0; b < B; ++b) finalize<OP>(acc + (l * B + b) * F, counts[b], F);
  }
  if constexpr (!std::is_same<Out, Acc>::value)
    for (int64_t i = 0; i < L * B * F; ++i) out[i] = store<Out>(acc[i]);
  return bad;
}

// grad_x of max/min for an unsorted index, with the even tie split: per feature block,
// one pass counts each set's ties, one writes every row's share (0 where x != y).
template <typename T>
int scatter_extremum_backward(const T* x, int64_t L, int64_t N, int64_t F, int64_t sL,
                              int64_t sN, int64_t sF, const int64_t* index, int64_t B,
                              const T* y, const T* grad, T* grad_x, int nthreads) {
  using Acc = typename AccOf<T>::type;
  const FeatureBlocks blocks(F, sizeof(T), nthreads);
  int bad = 0;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(| : bad)
  for (int64_t t = 0; t < L * blocks.count; ++t) {
    const int64_t l = t / blocks.count, f0 = blocks.begin(t % blocks.count, F),
                  f1 = blocks.end(t % blocks.count, F), w = f1 - f0;
    const T* xl = x + l * sL;
    const T* yl = y + l * B * F;
    const T* gl = grad + l * B * F;
    std::vector<Acc> share(B * w, Acc(0));
    for (int64_t r = 0; r < N; ++r) {
      const int64_t b = index[r];
      if (b < 0 || b >= B) { bad = 1; continue; }
      const T* row = xl + r * sN;
      for (int64_t f = f0; f < f1; ++f)
        share[b * w + f - f0] += load(row[f * sF]) == load(yl[b * F + f]) ? Acc(1) : Acc(0);
    }
    for (int64_t b = 0; b < B; ++b)
      for (int64_t f = f0; f < f1; ++f) {
        Acc& s = share[b * w + f - f0];
        s = s > 0 ? load(gl[b * F + f]) / s : Acc(0);
      }
    for (int64_t r = 0; r < N; ++r) {
      const int64_t b = index[r];
      T* g = grad_x + (l * N + r) * F;
      const T* row = xl + r * sN;
      for (int64_t f = f0; f < f1; ++f)
        g[f] = store<T>(b >= 0 && b < B && load(row[f * sF]) == load(yl[b * F + f])
                            ? share[b * w + f - f0] : Acc(0));
    }
  }
  return bad;
}

// Runs: R sets of S contiguous elements each (the pixels of one channel of a
// channels-first map). grad_x of max/min with the even tie split, one run at a time:
// count the ties, then write the share; the run is still in cache for the second pass.
template <typename T>
void run_extremum_backward(const T* x, int64_t R, int64_t S, const T* y, const T* grad,
                           T* grad_x, int nthreads) {
  using Acc = typename AccOf<T>::type;
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t i = 0; i < R; ++i) {
    const T* run = x + i * S;
    const Acc target = load(y[i]);
    int64_t ties = 0;
    for (int64_t s = 0; s < S; ++s) ties += load(run[s]) == target;
    const Acc share = ties ? load(grad[i]) / static_cast<Acc>(ties) : Acc(0);
    const T hit = store<T>(share), miss = store<T>(Acc(0));
    T* g = grad_x + i * S;
    for (int64_t s = 0; s < S; ++s) g[s] = load(run[s]) == target ? hit : miss;
  }
}

// The sorted order of an unsorted index (built once per grouping by gp_index_order):
// perm lists the rows of set 0, then of set 1, ..., each set's rows in row order, and ptr
// delimits the sets. Reducing by it writes each output row once, from registers, where
// the streaming kernel above read-modify-writes a random output row per message: the
// messages of a set are gathered instead (prefetched ORDER_PREFETCH rows ahead). Each
// (set, feature) still folds its rows in row order, so the result is bitwise that of the
// streaming kernel. A perm entry outside [0, N) is skipped and reported.
constexpr int64_t ORDER_PREFETCH = 8;

// Hand fold(row) the rows perm[begin:end] (from feature f0 on), prefetching ahead; a
// perm entry outside [0, N) is skipped and reported.
template <typename T, typename Fold>
inline int for_gathered(const T* __restrict base, const int64_t* __restrict perm,
                        int64_t begin, int64_t end, int64_t N, int64_t sN, int64_t sF,
                        int64_t f0, int64_t w, Fold fold) {
  constexpr int64_t LINE = 64 / sizeof(T);
  int bad = 0;
  for (int64_t i = begin; i < end; ++i) {
    if (i + ORDER_PREFETCH < N) {
      const uint64_t ahead = static_cast<uint64_t>(perm[i + ORDER_PREFETCH]);
      if (ahead < static_cast<uint64_t>(N) && sF == 1)
        for (int64_t k = 0; k < w; k += LINE) __builtin_prefetch(base + ahead * sN + f0 + k);
    }
    const int64_t r = perm[i];
    if (static_cast<uint64_t>(r) >= static_cast<uint64_t>(N)) { bad = 1; continue; }
    fold(base + r * sN + f0 * sF);
  }
  return bad;
}

template <int OP, typename T, typename Acc>
inline int gather_rows(const T* __restrict base, const int64_t* __restrict perm, int64_t begin,
                       int64_t end, int64_t N, int64_t F, int64_t sN, int64_t sF,
                       Acc* __restrict acc) {
  constexpr int64_t W = 256 / sizeof(Acc);
  int bad = 0;
  for (int64_t f0 = 0; f0 < F; f0 += W) {
    const int64_t w = std::min(W, F - f0);
    if constexpr (in_lanes(OP, std::is_same<T, Acc>::value)) {
      if (sF == 1 && w == W) {  // a full block in registers
        Lanes<OP, Acc> a;
        bad |= for_gathered(base, perm, begin, end, N, sN, sF, f0, w,
                            [&](const T* __restrict row) { a.fold(row); });
        if (a.exact()) {
          a.store(acc + f0);
          continue;
        }
      }
    }
    Acc a[W];
    for (int64_t k = 0; k < w; ++k) a[k] = identity<OP, Acc>();
    bad |= for_gathered(base, perm, begin, end, N, sN, sF, f0, w, [&](const T* __restrict row) {
      if (sF == 1 && w == W) {
        for (int64_t k = 0; k < W; ++k) a[k] = combine<OP>(a[k], load(row[k]));
      } else {
        for (int64_t k = 0; k < w; ++k) a[k] = combine<OP>(a[k], load(row[k * sF]));
      }
    });
    for (int64_t k = 0; k < w; ++k) acc[f0 + k] = a[k];
  }
  return bad;
}

template <int OP, typename T, typename Out>
int order_reduce(const T* x, int64_t L, int64_t N, int64_t F, int64_t sL, int64_t sN,
                 int64_t sF, const int64_t* ptr, const int64_t* perm, int64_t B, Out* out,
                 int nthreads) {
  using Acc = typename AccOf<T>::type;
  int bad = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : bad)
  {
    std::vector<Acc> acc(F);
#pragma omp for schedule(dynamic, 64)
    for (int64_t s = 0; s < L * B; ++s) {
      const int64_t l = s / B, b = s % B;
      bad |= gather_rows<OP>(x + l * sL, perm, ptr[b], ptr[b + 1], N, F, sN, sF, acc.data());
      finalize<OP>(acc.data(), ptr[b + 1] - ptr[b], F);
      for (int64_t f = 0; f < F; ++f) out[s * F + f] = store<Out>(acc[f]);
    }
  }
  return bad;
}

template <typename T>
int order_dispatch(int op, const void* x, int64_t L, int64_t N, int64_t F, int64_t sL,
                   int64_t sN, int64_t sF, const int64_t* ptr, const int64_t* perm, int64_t B,
                   void* out, int nthreads) {
  using Acc = typename AccOf<T>::type;
  const T* xt = static_cast<const T*>(x);
  switch (op) {
    case 0: return order_reduce<0>(xt, L, N, F, sL, sN, sF, ptr, perm, B, static_cast<Acc*>(out), nthreads);
    case 3: return order_reduce<3>(xt, L, N, F, sL, sN, sF, ptr, perm, B, static_cast<Acc*>(out), nthreads);
    case 1: return order_reduce<1>(xt, L, N, F, sL, sN, sF, ptr, perm, B, static_cast<T*>(out), nthreads);
    case 2: return order_reduce<2>(xt, L, N, F, sL, sN, sF, ptr, perm, B, static_cast<T*>(out), nthreads);
  }
  return 3;
}

// grad_x of max/min by the sorted order, with the even tie split: per set, one gathered
// pass counts the ties, one writes the set's rows of grad_x (the rows are still in cache).
// The same arithmetic as scatter_extremum_backward, so the same bits.
template <typename T>
int order_extremum_backward(const T* x, int64_t L, int64_t N, int64_t F, int64_t sL,
                            int64_t sN, int64_t sF, const int64_t* ptr, const int64_t* perm,
                            int64_t B, const T* y, const T* grad, T* grad_x, int nthreads) {
  using Acc = typename AccOf<T>::type;
  int bad = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : bad)
  {
    std::vector<Acc> share(F);
#pragma omp for schedule(dynamic, 64)
    for (int64_t s = 0; s < L * B; ++s) {
      const int64_t l = s / B, b = s % B;
      const T* xl = x + l * sL;
      const T* ys = y + s * F;
      std::fill(share.begin(), share.end(), Acc(0));
      for (int64_t i = ptr[b]; i < ptr[b + 1]; ++i) {
        const int64_t r = perm[i];
        if (static_cast<uint64_t>(r) >= static_cast<uint64_t>(N)) { bad = 1; continue; }
        for (int64_t f = 0; f < F; ++f)
          share[f] += load(xl[r * sN + f * sF]) == load(ys[f]) ? Acc(1) : Acc(0);
      }
      for (int64_t f = 0; f < F; ++f)
        share[f] = share[f] > 0 ? load(grad[s * F + f]) / share[f] : Acc(0);
      for (int64_t i = ptr[b]; i < ptr[b + 1]; ++i) {
        const int64_t r = perm[i];
        if (static_cast<uint64_t>(r) >= static_cast<uint64_t>(N)) continue;
        T* g = grad_x + (l * N + r) * F;
        for (int64_t f = 0; f < F; ++f)
          g[f] = store<T>(load(xl[r * sN + f * sF]) == load(ys[f]) ? share[f] : Acc(0));
      }
    }
  }
  return bad;
}

// out[l, r] = values[l, index[r]]: the adjoint of an unsorted sum (a gather). Rows with
// an id outside [0, B) get zeros and are reported.
template <typename T>
int index_broadcast(const T* values, int64_t L, int64_t N, int64_t F, const int64_t* index,
                    int64_t B, T* out, int nthreads) {
  int bad = 0;
#pragma omp parallel for num_threads(nthreads) schedule(static) reduction(| : bad)
  for (int64_t i = 0; i < L * N; ++i) {
    const int64_t l = i / N, b = index[i % N];
    if (static_cast<uint64_t>(b) >= static_cast<uint64_t>(B)) {
      std::memset(out + i * F, 0, F * sizeof(T));
      bad = 1;
      continue;
    }
    std::memcpy(out + i * F, values + (l * B + b) * F, F * sizeof(T));
  }
  return bad;
}

template <int OP, typename T>
int scatter_op(const void* x, int64_t L, int64_t N, int64_t F, int64_t sL, int64_t sN,
               int64_t sF, const int64_t* index, int64_t B, void* out, int nthreads) {
  using Acc = typename AccOf<T>::type;
  using Out = typename std::conditional<OP == 0 || OP == 3, Acc, T>::type;
  return scatter_reduce<OP>(static_cast<const T*>(x), L, N, F, sL, sN, sF, index, B,
                            static_cast<Out*>(out), nthreads);
}

template <typename T>
int scatter_dispatch(int op, const void* x, int64_t L, int64_t N, int64_t F, int64_t sL,
                     int64_t sN, int64_t sF, const int64_t* index, int64_t B, void* out,
                     int nthreads) {
  switch (op) {
    case 0: return scatter_op<0, T>(x, L, N, F, sL, sN, sF, index, B, out, nthreads);
    case 1: return scatter_op<1, T>(x, L, N, F, sL, sN, sF, index, B, out, nthreads);
    case 2: return scatter_op<2, T>(x, L, N, F, sL, sN, sF, index, B, out, nthreads);
    case 3: return scatter_op<3, T>(x, L, N, F, sL, sN, sF, index, B, out, nthreads);
  }
  return 3;
}

template <typename T, typename Out>
void reduce_op(int op, const void* x, int64_t L, int64_t F, int64_t sL, int64_t sN, int64_t sF,
               const int64_t* ptr, int64_t B, void* out, int nthreads) {
  const T* xt = static_cast<const T*>(x);
  using Acc = typename AccOf<T>::type;
  if (op == 0) {
    reduce<0>(xt, L, F, sL, sN, sF, ptr, B, static_cast<Acc*>(out), nthreads);
  } else if (op == 3) {
    reduce<3>(xt, L, F, sL, sN, sF, ptr, B, static_cast<Acc*>(out), nthreads);
  } else if (op == 1) {
    reduce<1>(xt, L, F, sL, sN, sF, ptr, B, static_cast<T*>(out), nthreads);
  } else {
    reduce<2>(xt, L, F, sL, sN, sF, ptr, B, static_cast<T*>(out), nthreads);
  }
}

// Centred moments of each set, for the variance (x of float32/float64): with c the set's
// mean (written to centre, the bits of gp_csr_reduce's mean), s1 = sum_v (x_v - c), s2 = sum_v (x_v - c)^2 and same = 1 where every
// row of the set equals its first row (0 on nan). Each difference and square is rounded
// to T and the sums run in the order of reduce() (rows in order, in chunks of CHUNK), so
// s1 and s2 are the bits that gp_csr_reduce gives for the sums of d = x - c and d * d
// (the build uses -ffp-contract=off: no fused multiply-add changes a square).
template <typename T>
inline void moment_rows(const T* __restrict base, int64_t begin, int64_t end, int64_t F,
                        int64_t sN, int64_t sF, const T* __restrict first,
                        const T* __restrict c, T* __restrict s1, T* __restrict s2,
                        uint8_t* __restrict same) {
  if (begin >= end) return;  // an empty set (or chunk) has no first row to read
  typedef T V __attribute__((vector_size(32)));
  typedef decltype(V{} < V{}) M;
  constexpr int64_t PER = 32 / sizeof(T), NV = 4, W = PER * NV;
  int64_t f0 = 0;
  if (sF == 1) {
    for (; f0 + W <= F; f0 += W) {  // a block of W features stays in vector registers
      V cv[NV], a1[NV], a2[NV], fv[NV];
      M eq[NV];
      for (int64_t k = 0; k < NV; ++k) {
        std::memcpy(&cv[k], c + f0 + k * PER, 32);
        std::memcpy(&a1[k], s1 + f0 + k * PER, 32);
        std::memcpy(&a2[k], s2 + f0 + k * PER, 32);
        std::memcpy(&fv[k], first + f0 + k * PER, 32);
        eq[k] = fv[k] == fv[k];
      }
      for (int64_t r = begin; r < end; ++r) {
        const T* __restrict row = base + r * sN + f0;
        for (int64_t k = 0; k < NV; ++k) {
          V v;
          std::memcpy(&v, row + k * PER, 32);
          const V d = v - cv[k];
          const V dd = d * d;
          a1[k] += d;
          a2[k] += dd;
          eq[k] &= v == fv[k];
        }
      }
      for (int64_t k = 0; k < NV; ++k) {
        std::memcpy(s1 + f0 + k * PER, &a1[k], 32);
        std::memcpy(s2 + f0 + k * PER, &a2[k], 32);
        for (int64_t j = 0; j < PER; ++j) same[f0 + k * PER + j] &= eq[k][j] != 0;
      }
    }
  }
  for (int64_t r = begin; r < end; ++r) {  // the remaining features, any stride
    const T* __restrict row = base + r * sN;
    for (int64_t f = f0; f < F; ++f) {
      const T v = row[f * sF], d = v - c[f], dd = d * d;
      s1[f] += d;
      s2[f] += dd;
      same[f] &= v == first[f * sF];
    }
  }
}

template <typename T>
void moments(const T* x, int64_t L, int64_t F, int64_t sL, int64_t sN, int64_t sF,
             const int64_t* ptr, int64_t B, T* centre, T* s1, T* s2, uint8_t* same,
             int nthreads) {
  const int64_t sets = L * B;
  if (sets >= nthreads) {  // many sets: one set per task, its chunks folded in order
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<T> p1(F), p2(F);
#pragma omp for schedule(dynamic, 16)
      for (int64_t s = 0; s < sets; ++s) {
        const int64_t l = s / B, b = s % B, begin = ptr[b], end = ptr[b + 1];
        const T* base = x + l * sL;
        T *c = centre + s * F, *o1 = s1 + s * F, *o2 = s2 + s * F;
        reduce_set<3>(base, begin, end, F, sN, sF, c, p1.data());  // the mean kernel's bits
        finalize<3>(c, end - begin, F);
        std::fill(o1, o1 + F, T(0));
        std::fill(o2, o2 + F, T(0));
        std::fill(same + s * F, same + (s + 1) * F, uint8_t(1));
        for (int64_t c0 = begin; c0 < end; c0 += CHUNK) {  // the set's rows, now in cache
          const int64_t c1 = std::min(end, c0 + CHUNK);
          const bool head = c0 == begin;
          if (!head) {
            std::fill(p1.begin(), p1.end(), T(0));
            std::fill(p2.begin(), p2.end(), T(0));
          }
          moment_rows(base, c0, c1, F, sN, sF, base + begin * sN, c, head ? o1 : p1.data(),
                      head ? o2 : p2.data(), same + s * F);
          if (!head) {
            fold_into<0>(o1, p1.data(), F);
            fold_into<0>(o2, p2.data(), F);
          }
        }
      }
    }
    return;
  }
  for (int64_t s = 0; s < sets; ++s) {  // few sets (one huge graph): chunks to threads
    const int64_t l = s / B, b = s % B, begin = ptr[b], end = ptr[b + 1];
    const int64_t chunks = num_chunks(begin, end);
    const T* base = x + l * sL;
    T* c = centre + s * F;
    std::vector<T> p1(chunks * F, T(0)), p2(chunks * F, T(0));
    std::vector<uint8_t> eq(chunks * F, uint8_t(1));
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t k = 0; k < chunks; ++k)  // the mean, as reduce() folds it
      accumulate_rows<0>(base, begin + k * CHUNK, std::min(end, begin + (k + 1) * CHUNK), F,
                         sN, sF, p1.data() + k * F);
    for (int64_t k = 1; k < chunks; ++k) fold_into<0>(p1.data(), p1.data() + k * F, F);
    finalize<3>(p1.data(), end - begin, F);
    std::copy(p1.begin(), p1.begin() + F, c);
    std::fill(p1.begin(), p1.end(), T(0));
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t k = 0; k < chunks; ++k)
      moment_rows(base, begin + k * CHUNK, std::min(end, begin + (k + 1) * CHUNK), F, sN, sF,
                  base + begin * sN, c, p1.data() + k * F, p2.data() + k * F,
                  eq.data() + k * F);
    for (int64_t k = 1; k < chunks; ++k) {
      fold_into<0>(p1.data(), p1.data() + k * F, F);
      fold_into<0>(p2.data(), p2.data() + k * F, F);
      for (int64_t f = 0; f < F; ++f) eq[f] &= eq[k * F + f];
    }
    std::copy(p1.begin(), p1.begin() + F, s1 + s * F);
    std::copy(p2.begin(), p2.begin() + F, s2 + s * F);
    std::copy(eq.begin(), eq.begin() + F, same + s * F);
  }
}

// The adjoint of moments() for a centre without gradient:
// grad_x = g1 + 2 (x - c) g2, written as g1 + (t + t) with t = (x - c) g2.
template <typename T>
inline void moment_grad_rows(const T* __restrict x, int64_t begin, int64_t end, int64_t F,
                             int64_t sN, int64_t sF, const T* __restrict c,
                             const T* __restrict g1, const T* __restrict g2,
                             T* __restrict out) {
  for (int64_t r = begin; r < end; ++r, out += F) {
    const T* __restrict row = x + r * sN;
    if (sF == 1) {  // contiguous features: a loop the compiler vectorises
      for (int64_t f = 0; f < F; ++f) {
        const T t = (row[f] - c[f]) * g2[f];
        out[f] = g1[f] + (t + t);
      }
    } else {
      for (int64_t f = 0; f < F; ++f) {
        const T t = (row[f * sF] - c[f]) * g2[f];
        out[f] = g1[f] + (t + t);
      }
    }
  }
}

template <typename T>
void moments_backward(const T* x, int64_t L, int64_t N, int64_t F, int64_t sL, int64_t sN,
                      int64_t sF, const int64_t* ptr, int64_t B, const T* centre, const T* g1,
                      const T* g2, T* grad_x, int nthreads) {
  if (L * B >= 4 * nthreads) {  // many sets: one set per task
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t s = 0; s < L * B; ++s) {
      const int64_t l = s / B, b = s % B;
      moment_grad_rows(x + l * sL, ptr[b], ptr[b + 1], F, sN, sF, centre + s * F, g1 + s * F,
                       g2 + s * F, grad_x + (l * N + ptr[b]) * F);
    }
    return;
  }
  const int64_t all = L * N;  // few sets: the rows go to the threads
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int64_t i = 0; i < all; ++i) {
    const int64_t l = i / N, r = i % N;
    const int64_t s = l * B + (std::upper_bound(ptr, ptr + B + 1, r) - ptr - 1);
    moment_grad_rows(x + l * sL, r, r + 1, F, sN, sF, centre + s * F, g1 + s * F, g2 + s * F,
                     grad_x + i * F);
  }
}

// The power mean's core for p = P in {1, 2, 3}, x of float32/float64. Per set and feature:
// scale = the largest |x| of the column (1 where that is 0, inf or nan, or the set is
// empty) and inner = the mean of f(x / scale), f(v) = v, v |v| or v v v: the sign of v
// times |v|^P as ATen's pow computes P = 2 and 3 (a product, a product of three), the sign
// copied as the composite's copysign does (so a nan keeps its sign bit too). These
// are the composite's bits (graphpool.composite.segment_power_mean): its scale from the
// max/min kernels, torch's division, the power, and the mean kernel's sums (rows in order,
// in chunks of CHUNK folded in order) divided by the count. Each set is read twice, the
// second time from the cache; sets go to the threads (one huge set runs on one thread).
template <int P, typename T>
inline T signed_power(T v) {
  if (P == 1) return v;
  const T a = std::fabs(v);
  return std::copysign(P == 2 ? a * a : a * a * a, v);
}

template <int P, typename T>
inline void power_rows(const T* __restrict base, int64_t begin, int64_t end, int64_t F,
                       int64_t sN, int64_t sF, const T* __restrict scale, T* __restrict acc) {
  for (int64_t r = begin; r < end; ++r) {
    const T* __restrict row = base + r * sN;
    if (sF == 1) {  // contiguous features: a loop the compiler vectorises
      for (int64_t f = 0; f < F; ++f) acc[f] += signed_power<P>(row[f] / scale[f]);
    } else {
      for (int64_t f = 0; f < F; ++f) acc[f] += signed_power<P>(row[f * sF] / scale[f]);
    }
  }
}

template <int P, typename T>
void power_mean(const T* x, int64_t L, int64_t F, int64_t sL, int64_t sN, int64_t sF,
                const int64_t* ptr, int64_t B, T* inner, T* scale, int nthreads) {
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<T> part(F), sum(F);  // sum of |x|: nan exactly where some |x| is nan
#pragma omp for schedule(dynamic, 16)
    for (int64_t s = 0; s < L * B; ++s) {
      const int64_t l = s / B, b = s % B, begin = ptr[b], end = ptr[b + 1];
      const T* base = x + l * sL;
      T *__restrict sc = scale + s * F, *acc = inner + s * F, *__restrict total = sum.data();
      std::fill(sc, sc + F, T(0));
      std::fill(total, total + F, T(0));
      for (int64_t r = begin; r < end; ++r) {
        const T* __restrict row = base + r * sN;
        if (sF == 1) {  // contiguous features: a loop the compiler vectorises
          for (int64_t f = 0; f < F; ++f) {
            const T a = std::fabs(row[f]);
            total[f] += a;
            sc[f] = a > sc[f] ? a : sc[f];
          }
        } else {
          for (int64_t f = 0; f < F; ++f) {
            const T a = std::fabs(row[f * sF]);
            total[f] += a;
            sc[f] = a > sc[f] ? a : sc[f];
          }
        }
      }
      for (int64_t f = 0; f < F; ++f)
        if (total[f] != total[f] || sc[f] == T(0) || sc[f] == T(INFINITY)) sc[f] = T(1);
      std::fill(acc, acc + F, T(0));
      for (int64_t c0 = begin; c0 < end; c0 += CHUNK) {
        const int64_t c1 = std::min(end, c0 + CHUNK);
        if (c0 == begin) {
          power_rows<P>(base, c0, c1, F, sN, sF, sc, acc);
        } else {
          std::fill(part.begin(), part.end(), T(0));
          power_rows<P>(base, c0, c1, F, sN, sF, sc, part.data());
          fold_into<0>(acc, part.data(), F);
        }
      }
      finalize<3>(acc, end - begin, F);
    }
  }
}

// Its adjoint for a scale without gradient, as the composite's backward computes it: per
// row grad_x = (g * slope(v)) / scale, v = x / scale, g the set's output gradient divided
// by its count, slope = P |v|^(P-1) where |v| > 0 and 0 elsewhere (nan too; P = 1: 1).
template <int P, typename T>
void power_mean_backward(const T* x, int64_t L, int64_t N, int64_t F, int64_t sL, int64_t sN,
                         int64_t sF, const int64_t* ptr, int64_t B, const T* scale,
                         const T* g, T* grad_x, int nthreads) {
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 16)
  for (int64_t s = 0; s < L * B; ++s) {
    const int64_t l = s / B, b = s % B;
    const T *sc = scale + s * F, *gs = g + s * F;
    for (int64_t r = ptr[b]; r < ptr[b + 1]; ++r) {
      const T* __restrict row = x + l * sL + r * sN;
      T* __restrict out = grad_x + (l * N + r) * F;
      for (int64_t f = 0; f < F; ++f) {
        const T m = std::fabs(row[f * sF] / sc[f]);
        const T slope = P == 1 ? T(1) : !(m > T(0)) ? T(0) : P == 2 ? T(2) * m : T(3) * (m * m);
        out[f] = (gs[f] * slope) / sc[f];
      }
    }
  }
}

}  // namespace

// A pointer the kernels can trust: starts at 0, never decreases, ends at rows.
bool valid_ptr(const int64_t* ptr, int64_t B, int64_t rows) {
  if (ptr[0] != 0 || ptr[B] != rows) return false;
  for (int64_t b = 0; b < B; ++b)
    if (ptr[b + 1] < ptr[b]) return false;
  return true;
}

extern "C" {

// Return codes: 0 done, 1 unknown dtype, 2 ptr out of bounds (nothing was read).
int gp_csr_reduce(int dtype, int op, const void* x, int64_t L, int64_t N, int64_t F,
                  int64_t sL, int64_t sN, int64_t sF, const int64_t* ptr, int64_t B, void* out,
                  int nthreads) {
  if (!valid_ptr(ptr, B, N)) return 2;
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
  if (!valid_ptr(ptr, B, N)) return 2;
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

// Return codes: 0 done, 1 not float32/float64, 2 ptr out of bounds (nothing was read).
int gp_csr_broadcast_mean(int dtype, const void* values, int64_t L, int64_t N, int64_t F,
                          const int64_t* ptr, int64_t B, void* out, int nthreads) {
  if (!valid_ptr(ptr, B, N)) return 2;
#define GP_CASE(code, T)                                                                  \
  case code:                                                                              \
    broadcast_mean(static_cast<const T*>(values), L, N, F, ptr, B, static_cast<T*>(out), \
                   nthreads);                                                             \
    return 0;
  switch (dtype) { GP_CASE(0, float) GP_CASE(1, double) }
#undef GP_CASE
  return 1;
}

int gp_csr_broadcast(int itemsize, const void* values, int64_t L, int64_t N, int64_t F,
                     const int64_t* ptr, int64_t B, void* out, int nthreads) {
  if (!valid_ptr(ptr, B, N)) return 2;
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

// Return codes: 0 done, 1 unknown dtype, 2 an id outside [0, B) (skipped; the output is
// not that of the index), 3 unknown op.
int gp_scatter_reduce(int dtype, int op, const void* x, int64_t L, int64_t N, int64_t F,
                      int64_t sL, int64_t sN, int64_t sF, const int64_t* index, int64_t B,
                      void* out, int nthreads) {
  int status = 1;
  switch (dtype) {
    case 0: status = scatter_dispatch<float>(op, x, L, N, F, sL, sN, sF, index, B, out, nthreads); break;
    case 1: status = scatter_dispatch<double>(op, x, L, N, F, sL, sN, sF, index, B, out, nthreads); break;
    case 2: status = scatter_dispatch<_Float16>(op, x, L, N, F, sL, sN, sF, index, B, out, nthreads); break;
    case 3: status = scatter_dispatch<BF16>(op, x, L, N, F, sL, sN, sF, index, B, out, nthreads); break;
    default: return 1;
  }
  return status == 1 ? 2 : status;
}

int gp_scatter_extremum_backward(int dtype, const void* x, int64_t L, int64_t N, int64_t F,
                                 int64_t sL, int64_t sN, int64_t sF, const int64_t* index,
                                 int64_t B, const void* y, const void* grad, void* grad_x,
                                 int nthreads) {
  int bad;
#define GP_CASE(code, T)                                                                    \
  case code:                                                                                \
    bad = scatter_extremum_backward<T>(static_cast<const T*>(x), L, N, F, sL, sN, sF, index, \
                                       B, static_cast<const T*>(y),                         \
                                       static_cast<const T*>(grad), static_cast<T*>(grad_x), \
                                       nthreads);                                           \
    return bad ? 2 : 0;
  switch (dtype) { GP_CASE(0, float) GP_CASE(1, double) GP_CASE(2, _Float16) GP_CASE(3, BF16) }
#undef GP_CASE
  return 1;
}

// Return codes as gp_scatter_reduce: 2 a ptr or perm entry out of bounds (skipped).
int gp_order_reduce(int dtype, int op, const void* x, int64_t L, int64_t N, int64_t F,
                    int64_t sL, int64_t sN, int64_t sF, const int64_t* ptr, const int64_t* perm,
                    int64_t B, void* out, int nthreads) {
  if (!valid_ptr(ptr, B, N)) return 2;
  int status = 1;
  switch (dtype) {
    case 0: status = order_dispatch<float>(op, x, L, N, F, sL, sN, sF, ptr, perm, B, out, nthreads); break;
    case 1: status = order_dispatch<double>(op, x, L, N, F, sL, sN, sF, ptr, perm, B, out, nthreads); break;
    case 2: status = order_dispatch<_Float16>(op, x, L, N, F, sL, sN, sF, ptr, perm, B, out, nthreads); break;
    case 3: status = order_dispatch<BF16>(op, x, L, N, F, sL, sN, sF, ptr, perm, B, out, nthreads); break;
    default: return 1;
  }
  return status == 1 ? 2 : status;
}

// Return codes as gp_order_reduce.
int gp_order_extremum_backward(int dtype, const void* x, int64_t L, int64_t N, int64_t F,
                               int64_t sL, int64_t sN, int64_t sF, const int64_t* ptr,
                               const int64_t* perm, int64_t B, const void* y, const void* grad,
                               void* grad_x, int nthreads) {
  if (!valid_ptr(ptr, B, N)) return 2;
  int bad;
#define GP_CASE(code, T)                                                                    \
  case code:                                                                                \
    bad = order_extremum_backward<T>(static_cast<const T*>(x), L, N, F, sL, sN, sF, ptr,     \
                                     perm, B, static_cast<const T*>(y),                     \
                                     static_cast<const T*>(grad), static_cast<T*>(grad_x),   \
                                     nthreads);                                             \
    return bad ? 2 : 0;
  switch (dtype) { GP_CASE(0, float) GP_CASE(1, double) GP_CASE(2, _Float16) GP_CASE(3, BF16) }
#undef GP_CASE
  return 1;
}

// Return codes: 0 done, 1 unknown item size, 2 an id outside [0, B) (its rows are zero).
int gp_index_broadcast(int itemsize, const void* values, int64_t L, int64_t N, int64_t F,
                       const int64_t* index, int64_t B, void* out, int nthreads) {
  int bad;
  switch (itemsize) {
    case 2: bad = index_broadcast(static_cast<const uint16_t*>(values), L, N, F, index, B,
                                  static_cast<uint16_t*>(out), nthreads); break;
    case 4: bad = index_broadcast(static_cast<const uint32_t*>(values), L, N, F, index, B,
                                  static_cast<uint32_t*>(out), nthreads); break;
    case 8: bad = index_broadcast(static_cast<const uint64_t*>(values), L, N, F, index, B,
                                  static_cast<uint64_t*>(out), nthreads); break;
    default: return 1;
  }
  return bad ? 2 : 0;
}

// Rows per set of an index: counts [B] (zeroed here). Returns 0, or 2 when an id is
// outside [0, B) (then counts is not the histogram). Never writes outside counts[0..B).
int gp_index_counts(const int64_t* index, int64_t n, int64_t B, int64_t* counts) {
  std::fill(counts, counts + B, int64_t(0));
  for (int64_t r = 0; r < n; ++r) {
    const int64_t b = index[r];
    if (static_cast<uint64_t>(b) >= static_cast<uint64_t>(B)) return 2;
    ++counts[b];
  }
  return 0;
}

// The sorted order of an unsorted index in O(N + B) (a stable counting sort): ptr [B + 1]
// delimits the sets, perm [n] lists each set's rows in row order. Returns 0, or 2 when
// an id is outside [0, B) (then ptr and perm are not an order and must not be used).
// Never writes outside ptr[0..B] and perm[0..n).
int gp_index_order(const int64_t* index, int64_t n, int64_t B, int64_t* ptr, int64_t* perm) {
  std::fill(ptr, ptr + B + 1, int64_t(0));
  for (int64_t r = 0; r < n; ++r) {
    const int64_t b = index[r];
    if (static_cast<uint64_t>(b) >= static_cast<uint64_t>(B)) return 2;
    ++ptr[b + 1];
  }
  for (int64_t b = 0; b < B; ++b) ptr[b + 1] += ptr[b];
  std::vector<int64_t> next(ptr, ptr + B);
  for (int64_t r = 0; r < n; ++r) perm[next[index[r]]++] = r;
  return 0;
}

// Returns 0, or 1 for an unknown dtype.
int gp_run_extremum_backward(int dtype, const void* x, int64_t R, int64_t S, const void* y,
                             const void* grad, void* grad_x, int nthreads) {
#define GP_CASE(code, T)                                                                    \
  case code:                                                                                \
    run_extremum_backward<T>(static_cast<const T*>(x), R, S, static_cast<const T*>(y),      \
                             static_cast<const T*>(grad), static_cast<T*>(grad_x),          \
                             nthreads);                                                     \
    return 0;
  switch (dtype) { GP_CASE(0, float) GP_CASE(1, double) GP_CASE(2, _Float16) GP_CASE(3, BF16) }
#undef GP_CASE
  return 1;
}

// A set index: stats = {min, max, 1 if non-decreasing}. When B >= 0 and the index is
// non-decreasing, also fills ptr [B + 1] (ptr[b] = first row whose id is >= b, found by
// binary search) and returns the number of empty sets; otherwise returns -1. Never
// writes outside stats[0..2] and ptr[0..B], whatever the index holds; ids outside
// [0, B) leave a ptr that the kernels reject (ptr[0] != 0 or ptr[B] != n).
int64_t gp_index_to_ptr(const int64_t* index, int64_t n, int64_t B, int64_t* stats,
                        int64_t* ptr) {
  int64_t sorted = 1;
  for (int64_t i = 1; i < n; ++i) sorted &= index[i] >= index[i - 1];  // vectorised
  int64_t lo = n ? index[0] : 0, hi = n ? index[n - 1] : -1;
  if (!sorted) {
    hi = index[0];
    for (int64_t i = 1; i < n; ++i) {
      lo = index[i] < lo ? index[i] : lo;
      hi = index[i] > hi ? index[i] : hi;
    }
  }
  stats[0] = lo;
  stats[1] = hi;
  stats[2] = sorted;
  if (B < 0 || !sorted) return -1;
  int64_t empty = 0;
  for (int64_t b = 0; b <= B; ++b) {
    const int64_t* from = b ? index + ptr[b - 1] : index;  // ptr never decreases
    ptr[b] = std::lower_bound(from, index + n, b) - index;
    empty += b && ptr[b] == ptr[b - 1];
  }
  return empty;
}

// A CSR pointer of length len >= 1: stats = {ptr[0], ptr[len - 1], 1 if non-decreasing,
// number of empty sets}.
void gp_ptr_stats(const int64_t* ptr, int64_t len, int64_t* stats) {
  int64_t monotone = 1, empty = 0;
  for (int64_t i = 1; i < len; ++i) {
    monotone &= ptr[i] >= ptr[i - 1];
    empty += ptr[i] == ptr[i - 1];
  }
  stats[0] = ptr[0];
  stats[1] = ptr[len - 1];
  stats[2] = monotone;
  stats[3] = empty;
}

// 1 if the n bytes at a and b are equal (the Segments cache compares a batch tensor with
// its private copy).
int gp_equal_bytes(const void* a, const void* b, int64_t n) {
  return n <= 0 || std::memcmp(a, b, static_cast<size_t>(n)) == 0;
}

// Returns 0, 1 for a dtype other than float32 (0) / float64 (1), 2 for a bad ptr.
int gp_csr_moments(int dtype, const void* x, int64_t L, int64_t N, int64_t F, int64_t sL,
                   int64_t sN, int64_t sF, const int64_t* ptr, int64_t B, void* centre,
                   void* s1, void* s2, uint8_t* same, int nthreads) {
  if (!valid_ptr(ptr, B, N)) return 2;
#define GP_CASE(code, T)                                                                    \
  case code:                                                                                \
    moments<T>(static_cast<const T*>(x), L, F, sL, sN, sF, ptr, B,                          \
               static_cast<T*>(centre), static_cast<T*>(s1), static_cast<T*>(s2),           \
               same, nthreads);                                                             \
    return 0;
  switch (dtype) { GP_CASE(0, float) GP_CASE(1, double) }
#undef GP_CASE
  return 1;
}

int gp_csr_moments_backward(int dtype, const void* x, int64_t L, int64_t N, int64_t F,
                            int64_t sL, int64_t sN, int64_t sF, const int64_t* ptr, int64_t B,
                            const void* centre, const void* g1, const void* g2, void* grad_x,
                            int nthreads) {
  if (!valid_ptr(ptr, B, N)) return 2;
#define GP_CASE(code, T)                                                                    \
  case code:                                                                                \
    moments_backward<T>(static_cast<const T*>(x), L, N, F, sL, sN, sF, ptr, B,              \
                        static_cast<const T*>(centre), static_cast<const T*>(g1),           \
                        static_cast<const T*>(g2), static_cast<T*>(grad_x), nthreads);      \
    return 0;
  switch (dtype) { GP_CASE(0, float) GP_CASE(1, double) }
#undef GP_CASE
  return 1;
}

// Returns 0, 1 for a dtype other than float32 (0) / float64 (1) or a power other than
// 1, 2, 3, 2 for a bad ptr.
int gp_csr_power_mean(int dtype, int power, const void* x, int64_t L, int64_t N, int64_t F,
                      int64_t sL, int64_t sN, int64_t sF, const int64_t* ptr, int64_t B,
                      void* inner, void* scale, int nthreads) {
  if (!valid_ptr(ptr, B, N)) return 2;
#define GP_CASE(code, p, T)                                                                 \
  if (dtype == code && power == p) {                                                        \
    power_mean<p, T>(static_cast<const T*>(x), L, F, sL, sN, sF, ptr, B,                    \
                     static_cast<T*>(inner), static_cast<T*>(scale), nthreads);             \
    return 0;                                                                               \
  }
  GP_CASE(0, 1, float) GP_CASE(0, 2, float) GP_CASE(0, 3, float)
  GP_CASE(1, 1, double) GP_CASE(1, 2, double) GP_CASE(1, 3, double)
#undef GP_CASE
  return 1;
}

int gp_csr_power_mean_backward(int dtype, int power, const void* x, int64_t L, int64_t N,
                               int64_t F, int64_t sL, int64_t sN, int64_t sF,
                               const int64_t* ptr, int64_t B, const void* scale,
                               const void* g, void* grad_x, int nthreads) {
  if (!valid_ptr(ptr, B, N)) return 2;
#define GP_CASE(code, p, T)                                                                 \
  if (dtype == code && power == p) {                                                        \
    power_mean_backward<p, T>(static_cast<const T*>(x), L, N, F, sL, sN, sF, ptr, B,        \
                              static_cast<const T*>(scale), static_cast<const T*>(g),       \
                              static_cast<T*>(grad_x), nthreads);                           \
    return 0;                                                                               \
  }
  GP_CASE(0, 1, float) GP_CASE(0, 2, float) GP_CASE(0, 3, float)
  GP_CASE(1, 1, double) GP_CASE(1, 2, double) GP_CASE(1, 3, double)
#undef GP_CASE
  return 1;
}

}  // extern "C"
