// The outliers' refit on a group held on the device (compute::device_outliers): the right
// side of their normal equations from the held residuals, and the fitted increment
// subtracted there. CPU twin: imaging::outliers::OutlierModel (fit_and_subtract's sums and
// subtraction, with calibrate::model::ModelPredictor's unit predictions).
//
// Row r (of nrow) is baseline r / nt (antennas bl_a, bl_b), integration t = r % nt; the held
// visibilities and weights are row x channel x polarization. Source s's unit prediction on
// row r, channel c: amp[(t * ns + s) * nc + c] x sinc(pi (smear_b - smear_a)) x
// exp(2 pi i nu_c (delay_b - delay_a)), delay and smear [t][antenna][s] (s, cycles). Its
// basis functions are that prediction times x_c^e, e = 0, 1.

#include "common.cuh"

struct UnitModel {
    const int* bl_a;
    const int* bl_b;
    int nt, nc, ns, n_ant;
    const double* amp;
    const double* delay;
    const double* smear;
    const double* freqs;

    // Source s's prediction on row r at channel c.
    __device__ double2 at(int r, int s, int c) const {
        int bl = r / nt, t = r % nt;
        return point_source(amp, delay, smear, freqs, t, bl_a[bl], bl_b[bl], s, c, ns, nc, n_ant);
    }
};

// Row r's terms of A^T v into partial[r * 2 ns + 2 s + e]: the sum over channels of
// x_c^e Re(conj(m_s) v_c), v_c the weighted sum over polarizations of the held
// visibilities (weights above 0); zeros for rows not used.
extern "C" __global__ void outlier_rows(const float* vis, const float* wt, const unsigned char* use_row,
                                        const int* bl_a, const int* bl_b, int nrow, int nt, int nc, int np,
                                        int ns, int n_ant, const double* amp, const double* delay,
                                        const double* smear, const double* freqs, const double* xs,
                                        double* partial) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= nrow) return;
    double* out = partial + (long long)r * 2 * ns;
    for (int k = 0; k < 2 * ns; ++k) out[k] = 0.0;
    if (!use_row[r]) return;
    UnitModel m{bl_a, bl_b, nt, nc, ns, n_ant, amp, delay, smear, freqs};
    for (int c = 0; c < nc; ++c) {
        double vr = 0.0, vi = 0.0;
        for (int p = 0; p < np; ++p) {
            long long j = ((long long)r * nc + c) * np + p;
            float w = wt[j];
            if (w > 0.0f) {
                vr += (double)w * (double)vis[2 * j];
                vi += (double)w * (double)vis[2 * j + 1];
            }
        }
        if (vr == 0.0 && vi == 0.0) continue;
        for (int s = 0; s < ns; ++s) {
            double2 u = m.at(r, s, c);
            double d = u.x * vr + u.y * vi;
            out[2 * s] += d;
            out[2 * s + 1] += d * xs[c];
        }
    }
}

// out[k * width + e] = the sum over rows k * chunk .. (k + 1) * chunk (in order) of
// partial[row * width + e].
extern "C" __global__ void sum_row_chunks(const double* partial, int nrow, int width, int chunk, double* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    int chunks = (nrow + chunk - 1) / chunk;
    if (i >= (long long)chunks * width) return;
    int k = (int)(i / width), e = (int)(i % width);
    int end = (k + 1) * chunk < nrow ? (k + 1) * chunk : nrow;
    double s = 0.0;
    for (int r = k * chunk; r < end; ++r) s += partial[(long long)r * width + e];
    out[i] = s;
}

// The fitted increment subtracted from every polarization of row r, channel c (rows used
// only): sum over sources of m_s (delta[2 s] + delta[2 s + 1] x_c), rounded to f32 once.
extern "C" __global__ void outlier_subtract(float* vis, const unsigned char* use_row, const int* bl_a,
                                            const int* bl_b, int nrow, int nt, int nc, int np, int ns,
                                            int n_ant, const double* amp, const double* delay,
                                            const double* smear, const double* freqs, const double* xs,
                                            const double* delta) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)nrow * nc) return;
    int r = (int)(i / nc), c = (int)(i % nc);
    if (!use_row[r]) return;
    UnitModel m{bl_a, bl_b, nt, nc, ns, n_ant, amp, delay, smear, freqs};
    double zr = 0.0, zi = 0.0;
    for (int s = 0; s < ns; ++s) {
        double2 u = m.at(r, s, c);
        double f = delta[2 * s] + delta[2 * s + 1] * xs[c];
        zr += u.x * f;
        zi += u.y * f;
    }
    float fr = (float)zr, fi = (float)zi;
    for (int p = 0; p < np; ++p) {
        long long j = (i * np + p) * 2;
        vis[j] -= fr;
        vis[j + 1] -= fi;
    }
}
