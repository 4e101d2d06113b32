// Kernel (b): the ROI of the frame as the SR input → float32 RGB 1×3×h×w in [0, 1]; with ``black``, everything
// outside the lesion zeroed (the paper's masking; the default keeps the real surround: no halo).
// NumPy reference: skinedge/runtime/pipeline/reference.py::masked_roi.
//
//   out[c, y, x] = frame[y0+y, x0+x, 2−c] / 255   if !black or bilinear(mask, (sy, sx)) ≥ 0.5, else 0
//   sx = clamp((x0 + x + 0.5) · S/W − 0.5, 0, S−1)   (sy likewise with H), mask S×S uint8 0/1
//
// The mask coordinate is computed in double, as NumPy does: with a hard 0.5 threshold, exact ties are
// common (e.g. rows of a 1080-line frame on a 256 mask), so float32 coordinates would flip pixels.
// The bilinear weights and blend are float32 in the reference's order. No fast math, no FMA contraction.

__device__ __forceinline__ void bilinear_coord(int pos, int in_size, double scale, int* i0, int* i1, float* f)
{
    double src = ((double)pos + 0.5) * scale - 0.5;
    src = fmin(fmax(src, 0.0), (double)(in_size - 1));
    const double fl = floor(src);
    *i0 = (int)fl;
    *i1 = min(*i0 + 1, in_size - 1);
    *f = (float)(src - fl);
}

extern "C" __global__ void masked_roi(const unsigned char* __restrict__ frame, int pitch, int height, int width,
                                      const unsigned char* __restrict__ mask, int s,
                                      int x0, int y0, int w, int h, float* __restrict__ out, int black)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;

    bool keep = true;
    if (black) {
        int my0, my1, mx0, mx1;
        float fy, fx;
        bilinear_coord(y0 + y, s, (double)s / (double)height, &my0, &my1, &fy);
        bilinear_coord(x0 + x, s, (double)s / (double)width, &mx0, &mx1, &fx);
        const float top = (float)mask[my0 * s + mx0] * (1.0f - fx) + (float)mask[my0 * s + mx1] * fx;
        const float bottom = (float)mask[my1 * s + mx0] * (1.0f - fx) + (float)mask[my1 * s + mx1] * fx;
        keep = top * (1.0f - fy) + bottom * fy >= 0.5f;
    }

    const unsigned char* p = frame + (size_t)(y0 + y) * pitch + 3 * (x0 + x);
    const size_t plane = (size_t)h * w;
    const size_t o = (size_t)y * w + x;
    out[o] = keep ? (float)p[2] / 255.0f : 0.0f;
    out[plane + o] = keep ? (float)p[1] / 255.0f : 0.0f;
    out[2 * plane + o] = keep ? (float)p[0] / 255.0f : 0.0f;
}
