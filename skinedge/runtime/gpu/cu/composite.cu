// Kernel (c): up-scaled frame as background, SR inside the feathered lesion mask → uint8 BGR OH×OW×3.
// NumPy reference: skinedge/runtime/pipeline/reference.py::composite.
//
// For output pixel (x, y) at up-scaled frame position (X, Y) = (X0 + x, Y0 + y):
//   bg  = bicubic(frame) at (X, Y): Keys a = −0.5 taps of resample_taps(·, ·×scale, "cubic"), taps outside
//         the frame dropped and the rest renormalised; rows first, then columns       per channel
//   a   = bilinear(soft, clamp((X + 0.5)·S/(W·scale) − 0.5, 0, S−1), likewise Y)  if (X, Y) lies in
//         roi×scale and sr != NULL, else 0
//   out = clamp(floor(a·sr[2−c, Y−y0·scale, X−x0·scale]·255 + (1 − a)·bg + 0.5), 0, 255)
// out_rect = (X0, Y0, OW, OH): roi×scale for the ROI view, (0, 0, W·scale, H·scale) for the full frame.
// sr == NULL: no lesion, background only. Coordinates are float32 (exact for power-of-two scales on the
// frame; ≤ 1 LSB against the reference otherwise). No fast math, no FMA contraction.

__device__ __forceinline__ void bilinear_coord(int pos, int in_size, float scale, int* i0, int* i1, float* f)
{
    float src = ((float)pos + 0.5f) * scale - 0.5f;
    src = fminf(fmaxf(src, 0.0f), (float)(in_size - 1));
    const float fl = floorf(src);
    *i0 = (int)fl;
    *i1 = min(*i0 + 1, in_size - 1);
    *f = src - fl;
}

__device__ __forceinline__ float keys_cubic(float x)
{
    x = fabsf(x);
    const float a = -0.5f;
    if (x < 1.0f) return ((a + 2.0f) * x - (a + 3.0f)) * x * x + 1.0f;
    if (x < 2.0f) return ((x - 5.0f) * x + 8.0f) * x * a - 4.0f * a;
    return 0.0f;
}

// The 5 taps of an enlargement in_size → in_size·scale at output position o (as projection.cu::cubic_taps).
__device__ __forceinline__ void up_taps(int o, int in_size, int scale, int* first, float* w)
{
    const double centre = ((double)o + 0.5) / (double)scale;
    *first = (int)floor(centre - 2.0);
    float total = 0.0f;
    for (int i = 0; i < 5; ++i) {
        const int t = *first + i;
        w[i] = (t < 0 || t >= in_size) ? 0.0f : keys_cubic((float)((double)t + 0.5 - centre));
        total = total + w[i];
    }
    for (int i = 0; i < 5; ++i) w[i] = w[i] / total;
}

extern "C" __global__ void composite(const unsigned char* __restrict__ frame, int pitch, int height, int width,
                                     const float* __restrict__ sr, const float* __restrict__ soft, int s,
                                     int x0, int y0, int w, int h, int scale,
                                     int ox0, int oy0, int ow, int oh,
                                     unsigned char* __restrict__ out, int out_pitch)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= ow || y >= oh) return;
    const int X = ox0 + x, Y = oy0 + y;

    int ty, tx;
    float wy[5], wx[5];
    up_taps(Y, height, scale, &ty, wy);
    up_taps(X, width, scale, &tx, wx);

    // a: the soft mask at this pixel, 0 outside the SR rectangle (there is no SR there)
    const int sy = Y - y0 * scale, sx = X - x0 * scale, sh = h * scale, sw = w * scale;
    float a = 0.0f;
    if (sr != nullptr && sy >= 0 && sy < sh && sx >= 0 && sx < sw) {
        int my0, my1, mx0, mx1;
        float gy, gx;
        bilinear_coord(Y, s, (float)s / (float)(height * scale), &my0, &my1, &gy);
        bilinear_coord(X, s, (float)s / (float)(width * scale), &mx0, &mx1, &gx);
        const float top = soft[my0 * s + mx0] * (1.0f - gx) + soft[my0 * s + mx1] * gx;
        const float bottom = soft[my1 * s + mx0] * (1.0f - gx) + soft[my1 * s + mx1] * gx;
        a = top * (1.0f - gy) + bottom * gy;
    }

    unsigned char* q = out + (size_t)y * out_pitch + 3 * x;
    for (int c = 0; c < 3; ++c) {  // BGR
        float v = 0.0f;  // bg: rows first (per column tap), then columns, as the reference
        for (int j = 0; j < 5; ++j) {
            const int cx = tx + j;
            if (cx < 0 || cx >= width) continue;
            float col = 0.0f;
            for (int i = 0; i < 5; ++i) {
                const int cy = ty + i;
                if (cy < 0 || cy >= height) continue;
                col = col + wy[i] * (float)frame[(size_t)cy * pitch + 3 * cx + c];
            }
            v = v + wx[j] * col;
        }
        if (a != 0.0f) {
            const float lesion = sr[((size_t)(2 - c) * sh + sy) * sw + sx] * 255.0f;
            v = a * lesion + (1.0f - a) * v;
        }
        q[c] = (unsigned char)fminf(fmaxf(floorf(v + 0.5f), 0.0f), 255.0f);
    }
}
