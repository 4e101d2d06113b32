// Data-consistency projection after SR, on planar float32 RGB images (3×h×w, [0, 1]).
// NumPy reference: skinedge/runtime/pipeline/projection.py (and reference.py::resample_taps, kind "cubic").
//
// resample_axis: one pass of a separable bicubic resize along rows (axis 0) or columns (axis 1):
//   out[c, y, x] = base[c, y, x] + sign · Σ_k w_k · in[c, tap_k]     (base NULL: 0), then [0, 1] if clamp01
//   w_k = keys((t_k + 0.5 − centre) / stretch), renormalised over the taps inside the input; centre =
//   (o + 0.5) · in/out, stretch = max(1, in/out), support 2·stretch (PIL's anti-aliased BICUBIC).
//   down(x) = cols(rows(x)); up(d) likewise; x ← x + up(LR − down(x)) is four passes.
// keep_luma: out = up(LR) + Y(sr − up(LR)) per channel (BT.601 weights), up(LR) computed inline.
// lesion_residual: Σ over the ROI's lesion pixels of mean_c |d| · 255, and their count (atomics).
// No fast math, no FMA contraction; weights in float32, tap positions in double (exact for integer scales).

__device__ __forceinline__ float keys_cubic(float x)
{
    x = fabsf(x);
    const float a = -0.5f;
    if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
    if (x < 2.0f) return ((x - 5.0f) * x + 8.0f) * x * a - 4.0f * a;
    return 0.0f;
}

// The taps of output position o for a resize in_size → out_size: first input index, count, normalised weights.
__device__ __forceinline__ int cubic_taps(int o, int in_size, int out_size, int* first, float* w, int max_taps)
{
    const double scale = (double)in_size / (double)out_size;
    const double stretch = scale > 1.0 ? scale : 1.0;
    const double support = 2.0 * stretch;
    const double centre = ((double)o + 0.5) * scale;
    const int k = (int)ceil(support) * 2 + 1;
    *first = (int)floor(centre - support);
    float total = 0.0f;
    for (int i = 0; i < k && i < max_taps; ++i) {
        const int t = *first + i;
        w[i] = (t < 0 || t >= in_size) ? 0.0f : keys_cubic((float)(((double)t + 0.5 - centre) / stretch));
        total = total + w[i];
    }
    for (int i = 0; i < k && i < max_taps; ++i) w[i] = w[i] / total;
    return k < max_taps ? k : max_taps;
}

#define MAX_TAPS 33  // down-scales up to 8× (the SR scale is 2 or 4: 17 taps)

extern "C" __global__ void resample_axis(const float* __restrict__ in, int in_h, int in_w,
                                         float* out, int out_h, int out_w, int axis,
                                         const float* base, float sign, int clamp01)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) return;
    float w[MAX_TAPS];
    int first;
    const int k = axis == 0 ? cubic_taps(y, in_h, out_h, &first, w, MAX_TAPS)
                            : cubic_taps(x, in_w, out_w, &first, w, MAX_TAPS);
    const size_t in_plane = (size_t)in_h * in_w, out_plane = (size_t)out_h * out_w;
    const size_t o = (size_t)y * out_w + x;
    for (int c = 0; c < 3; ++c) {
        float acc = 0.0f;
        for (int i = 0; i < k; ++i) {
            const int t = first + i;
            if (t < 0) continue;
            if (axis == 0 && t >= in_h) continue;
            if (axis == 1 && t >= in_w) continue;
            const float v = axis == 0 ? in[c * in_plane + (size_t)t * in_w + x] : in[c * in_plane + (size_t)y * in_w + t];
            acc = acc + w[i] * v;
        }
        float v = base != nullptr ? base[c * out_plane + o] + sign * acc : sign * acc;
        if (clamp01) v = fminf(fmaxf(v, 0.0f), 1.0f);
        out[c * out_plane + o] = v;
    }
}

extern "C" __global__ void keep_luma(const float* __restrict__ lr, int h, int w, float* sr, int out_h, int out_w,
                                     int clamp01)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) return;
    float wy[9], wx[9];
    int fy, fx;
    const int ky = cubic_taps(y, h, out_h, &fy, wy, 9), kx = cubic_taps(x, w, out_w, &fx, wx, 9);
    const size_t plane = (size_t)h * w, out_plane = (size_t)out_h * out_w, o = (size_t)y * out_w + x;
    float smooth[3], d[3];
    for (int c = 0; c < 3; ++c) {
        float acc = 0.0f;  // rows first, then columns: the reference's order
        for (int j = 0; j < kx; ++j) {
            const int tx = fx + j;
            if (tx < 0 || tx >= w) continue;
            float col = 0.0f;
            for (int i = 0; i < ky; ++i) {
                const int ty = fy + i;
                if (ty < 0 || ty >= h) continue;
                col = col + wy[i] * lr[c * plane + (size_t)ty * w + tx];
            }
            acc = acc + wx[j] * col;
        }
        smooth[c] = acc;
        d[c] = sr[c * out_plane + o] - acc;
    }
    const float luma = 0.299f * d[0] + 0.587f * d[1] + 0.114f * d[2];
    for (int c = 0; c < 3; ++c) {
        float v = smooth[c] + luma;
        if (clamp01) v = fminf(fmaxf(v, 0.0f), 1.0f);
        sr[c * out_plane + o] = v;
    }
}

extern "C" __global__ void lesion_residual(const float* __restrict__ d, int h, int w,
                                           const float* __restrict__ soft, int s, int height, int width,
                                           int x0, int y0, float* sums)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    // the feathered mask at the ROI pixel's centre (reference.py::roi_lesion), coordinates in double
    double sy = ((double)(y0 + y) + 0.5) * ((double)s / (double)height) - 0.5;
    double sx = ((double)(x0 + x) + 0.5) * ((double)s / (double)width) - 0.5;
    sy = fmin(fmax(sy, 0.0), (double)(s - 1));
    sx = fmin(fmax(sx, 0.0), (double)(s - 1));
    const int my0 = (int)floor(sy), mx0 = (int)floor(sx);
    const int my1 = min(my0 + 1, s - 1), mx1 = min(mx0 + 1, s - 1);
    const float gy = (float)(sy - floor(sy)), gx = (float)(sx - floor(sx));
    const float top = soft[my0 * s + mx0] * (1.0f - gx) + soft[my0 * s + mx1] * gx;
    const float bottom = soft[my1 * s + mx0] * (1.0f - gx) + soft[my1 * s + mx1] * gx;
    if (top * (1.0f - gy) + bottom * gy < 0.5f) return;
    const size_t plane = (size_t)h * w, o = (size_t)y * w + x;
    const float v = (fabsf(d[o]) + fabsf(d[plane + o]) + fabsf(d[2 * plane + o])) / 3.0f * 255.0f;
    atomicAdd(&sums[0], v);
    atomicAdd(&sums[1], 1.0f);
}
