// Kernel (c): up-scaled frame as background, SR inside the feathered lesion mask → uint8 BGR OH×OW×3.
// NumPy reference: skinedge/runtime/reference.py::composite.
//
// For output pixel (x, y) at up-scaled frame position (X, Y) = (X0 + x, Y0 + y):
//   bg  = bilinear(frame, clamp((X + 0.5)/scale − 0.5, 0, W−1), likewise Y)      per channel
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

    int fy0, fy1, fx0, fx1;
    float fy, fx;
    const float inv = 1.0f / (float)scale;
    bilinear_coord(Y, height, inv, &fy0, &fy1, &fy);
    bilinear_coord(X, width, inv, &fx0, &fx1, &fx);
    const unsigned char* r0 = frame + (size_t)fy0 * pitch;
    const unsigned char* r1 = frame + (size_t)fy1 * pitch;

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
        const float top = (float)r0[3 * fx0 + c] * (1.0f - fx) + (float)r0[3 * fx1 + c] * fx;
        const float bottom = (float)r1[3 * fx0 + c] * (1.0f - fx) + (float)r1[3 * fx1 + c] * fx;
        float v = top * (1.0f - fy) + bottom * fy;  // bg
        if (a != 0.0f) {
            const float lesion = sr[((size_t)(2 - c) * sh + sy) * sw + sx] * 255.0f;
            v = a * lesion + (1.0f - a) * v;
        }
        q[c] = (unsigned char)fminf(fmaxf(floorf(v + 0.5f), 0.0f), 255.0f);
    }
}
