// The calibration solver's sufficient statistics of a calibrator group (compute::
// device_calstats; CPU twin compute::cal_stats::cal_stats_cpu, whose order of sums these
// follow). A batch holds rows row0 .. of the group; its baseline j is the group's row
// rows[j] (antennas bl_a[j], bl_b[j]); samples are row x integration x channel x pol,
// their weights IEEE half floats (bits) times wscale.
//
// The model of baseline (a, b) at integration t, channel c: the sum over sources s of
// amp[(t * ns + s) * nc + c] x sinc(pi (smear_b - smear_a)) x exp(2 pi i nu_c (delay_b -
// delay_a)), delay and smear [t][antenna][s], times P_a conj(P_b) (P per antenna, channel,
// pol) when has_premul.

#include "common.cuh"

// An IEEE half float's value, exactly (infinities and NaNs, which no weight is, as 0: not
// summed).
__device__ inline float cal_half(unsigned short h) {
    int e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v;
    if (e == 0) {
        v = ldexpf((float)m, -24);
    } else if (e == 31) {
        v = 0.0f;
    } else {
        v = ldexpf((float)(m | 0x400), e - 25);
    }
    return (h & 0x8000) ? -v : v;
}

// Thread per (batch baseline j, channel c): the partial sums A (re, im), B, C, count of
// each (run, pol) over the run's integrations in order, into
// partial[((j * nrun + run) * nc + c) * np + p][0..5).
extern "C" __global__ void calstats_partial(const float* vis, const unsigned short* wt, float wscale,
                                            int row0, const int* rows, const int* bl_a, const int* bl_b,
                                            int nbl, int nt, int nc, int np, const unsigned char* keep,
                                            const int* run_of, int nrun, const double* proj, double uv_min,
                                            const double* freqs, int ns, int n_ant, const double* amp,
                                            const double* delay, const double* smear, const double* premul,
                                            int has_premul, double* partial) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)nbl * nc) return;
    int j = (int)(i / nc), c = (int)(i % nc);
    int k = rows[j], a = bl_a[j], b = bl_b[j];
    double* out = partial + (long long)j * nrun * nc * np * 5;
    for (int r = 0; r < nrun; ++r)
        for (int p = 0; p < np; ++p)
            for (int e = 0; e < 5; ++e) out[((long long)(r * nc + c) * np + p) * 5 + e] = 0.0;
    double nu = freqs[c];
    long long base = (long long)(k - row0) * nt * nc * np;
    for (int t = 0; t < nt; ++t) {
        if (proj[(long long)k * nt + t] * nu / CONTIMG_C_M_S < uv_min) continue;
        double mr = 0.0, mi = 0.0;
        bool model_done = false;
        for (int p = 0; p < np; ++p) {
            int s_tcp = (t * nc + c) * np + p;
            long long idx = base + s_tcp;
            double w = (double)(cal_half(wt[idx]) * wscale);
            if (!(w > 0.0) || !keep[s_tcp]) continue;
            if (!model_done) {
                for (int s = 0; s < ns; ++s) {
                    double2 u = point_source(amp, delay, smear, freqs, t, a, b, s, c, ns, nc, n_ant);
                    mr += u.x;
                    mi += u.y;
                }
                model_done = true;
            }
            double qr = mr, qi = mi;
            if (has_premul) {
                long long pa = ((long long)a * nc + c) * np + p, pb = ((long long)b * nc + c) * np + p;
                double ar = premul[2 * pa], ai = premul[2 * pa + 1];
                double br = premul[2 * pb], bi = -premul[2 * pb + 1];
                double zr = ar * br - ai * bi, zi = ar * bi + ai * br;
                qr = mr * zr - mi * zi;
                qi = mr * zi + mi * zr;
            }
            double vr = (double)vis[2 * idx], vi = (double)vis[2 * idx + 1];
            // v conj(m) w
            double ar = (vr * qr - vi * (-qi)) * w;
            double ai = (vr * (-qi) + vi * qr) * w;
            double* o = out + ((long long)(run_of[t] * nc + c) * np + p) * 5;
            o[0] += ar;
            o[1] += ai;
            o[2] += w * (qr * qr + qi * qi);
            o[3] += w * (vr * vr + vi * vi);
            o[4] += 1.0;
        }
    }
}

// Thread per (listed cell i, batch baseline j): the sum of the cell's entries
// entries[starts[i] .. starts[i + 1]) (each (run * nc + c) * np + p) of the baseline's
// partial sums, in order, into sums[(i * stride + j0 + j) * 5 + e].
extern "C" __global__ void calstats_cells(const double* partial, int nbl, int width, const int* starts,
                                          const int* entries, int ncell, int stride, int j0, double* sums) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)ncell * nbl) return;
    int cell = (int)(i / nbl), j = (int)(i % nbl);
    double s[5] = {0.0, 0.0, 0.0, 0.0, 0.0};
    const double* part = partial + (long long)j * width * 5;
    for (int e = starts[cell]; e < starts[cell + 1]; ++e) {
        const double* x = part + (long long)entries[e] * 5;
        for (int q = 0; q < 5; ++q) s[q] += x[q];
    }
    double* o = sums + ((long long)cell * stride + j0 + j) * 5;
    for (int q = 0; q < 5; ++q) o[q] = s[q];
}
