// Kernel (a): uint8 BGR frame H×W×3 → float32 RGB 1×3×out_h×out_w, resized and normalised.
// NumPy reference: skinedge/runtime/pipeline/reference.py::preprocess.
//
//   out[c, y, x] = (Σ_i wy[y,i] · Σ_j wx[x,j] · frame[iy[y,i], ix[x,j], 2−c] / 255 − mean[c]) / std[c]
//
// (iy, wy) and (ix, wx) are reference.resample_taps(H, out_h) and (W, out_w): index int32 out×K and
// weight float32 out×K per axis (anti-aliased triangle filter; taps outside the image have weight 0).
// One thread per output pixel, all three channels. Compiled without fast math or FMA contraction.

extern "C" __global__ void preprocess(const unsigned char* __restrict__ frame, int pitch,
                                      const int* __restrict__ iy, const float* __restrict__ wy, int ky,
                                      const int* __restrict__ ix, const float* __restrict__ wx, int kx,
                                      float* __restrict__ out, int out_h, int out_w,
                                      float mean_r, float mean_g, float mean_b,
                                      float std_r, float std_g, float std_b)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) return;

    float r = 0.0f, g = 0.0f, b = 0.0f;
    for (int i = 0; i < ky; ++i) {
        const float wyi = wy[y * ky + i];
        if (wyi == 0.0f) continue;  // a dropped (outside) or zero tap adds nothing
        const unsigned char* row = frame + (size_t)iy[y * ky + i] * pitch;
        float rr = 0.0f, gg = 0.0f, bb = 0.0f;  // horizontal pass over this input row
        for (int j = 0; j < kx; ++j) {
            const float wxj = wx[x * kx + j];
            const unsigned char* p = row + 3 * ix[x * kx + j];
            bb += wxj * (float)p[0];
            gg += wxj * (float)p[1];
            rr += wxj * (float)p[2];
        }
        r += wyi * rr;
        g += wyi * gg;
        b += wyi * bb;
    }
    const size_t plane = (size_t)out_h * out_w;
    const size_t o = (size_t)y * out_w + x;
    out[o] = (r / 255.0f - mean_r) / std_r;
    out[plane + o] = (g / 255.0f - mean_g) / std_g;
    out[2 * plane + o] = (b / 255.0f - mean_b) / std_b;
}
