// Runs kernels on the host through shim.h, launched as device_flag.rs and device_minor.rs
// launch them, for compute::flag_pass's and compute::minor's tests. Binary little-endian records on stdin and
// stdout (n = planes x plane samples):
//   noise:        i64 planes, i64 plane_size, f32 values[n], f32 bg[n], u8 mask[n]
//                 -> f64 sigma[planes], u8 used[planes], f32 residuals[n]
//   sir:          i64 planes, i64 nt, i64 nf, f64 eta, i64 extend, u8 flags[n] -> u8 flags[n]
//   sumthreshold: i64 planes, i64 nt, i64 nf, i64 max_m_time, i64 max_m_freq, i64 windows,
//                 (i64 m, f32 threshold) per window, f32 values[n], u8 flags[n] -> u8 flags[n]
//   background:   i64 planes, i64 nt, i64 nf, i64 linear, i64 taps_t, f64 kt[taps_t],
//                 i64 taps_f, f64 kf[taps_f], f32 values[n], u8 flags[n] -> f32 surface[n]
//   minor:        i64 n, i64 len, i64 nt, i64 max_iter, f64 rules[6], f64 subtracted,
//                 f64 hinv[nt nt], i32 xs[len], i32 ys[len], f64 vals[nt len],
//                 f64 psf[(2 nt - 1) (2n)^2] -> i32 done[2], f64 subtracted,
//                 i32 comp_k[done[0]], f64 comp_f[done[0] nt]
//   grid:         i64 ng, i64 n, i64 segments, i64 tiles_x, i64 support, f64 beta,
//                 f64 u_px[n], f64 v_px[n], f64 vis_w[2 n], f64 w_weight[n] (sorted by
//                 tile), i32 seg_tile[segments], i32 seg_start[segments + 1]
//                 -> f64 grid[2 ng ng]
//   degrid:       i64 ng, i64 n, i64 support, f64 beta, f64 grid[2 ng ng], f64 u_px[n],
//                 f64 v_px[n], f64 w_weight[n] -> f64 out[2 n]
//   psf_hat:      i64 m, f64 psf[m m] -> f32 hat[2 m m] (real_to_complex, the centred
//                 transform, narrow_complex: device_convolve.rs's psf_hat_dev)
//   convolve:     i64 n, i64 terms, i64 count[terms], then per term i64 idx[count],
//                 f64 flux[count]; f32 hats[(2 terms - 1) 2 m m] (m = 2n)
//                 -> f64 out[terms n n] (device_convolve.rs's convolve_dev)
//   dft:          i64 nrow, i64 nt, i64 nc, i64 npts, f64 dnu, f64 uvw[3 nrow], f64 dw[nrow],
//                 u8 use_row[nrow], f64 freqs[nc], f64 lmn[3 npts], f32 amp[npts nc nt],
//                 f32 out[2 nrow nc] -> f32 out[2 nrow nc] (device_dft.rs's predict_points_dev)
// cuFFT's transforms are kernels/host/dft2.h's FFT here (rows, then columns; exact twiddles).
// A second argument, the threads a block, runs the blocks of the block-wide kernels
// (plane_noise, clark_minor, grid_tiles) with that many concurrent threads, as the device
// launches them (default 1: each block as one thread).
#include "shim.h"
#include "../residuals.cu"
#include "../sir.cu"
#include "../sumthreshold.cu"
#include "../background.cu"
#include "../minor.cu"
#include "../grid.cu"
#include "../degrid.cu"
#include "../convolve.cu"
#include "../wstack.cu"
#include "../dft.cu"
#include "dft2.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

template <class T> static std::vector<T> get(size_t n) {
    std::vector<T> v(n);
    if (n && std::fread(v.data(), sizeof(T), n, stdin) != n) throw std::string("short input");
    return v;
}
template <class T> static T get1() { return get<T>(1)[0]; }
static unsigned int block_threads = 1;

// The blocks of a block-wide kernel, with block_threads threads each.
template <class F> static void run_block_kernel(long long blocks, F kernel) {
    if (block_threads > 1)
        run_blocks_threaded(blocks, block_threads, kernel);
    else
        run_blocks(blocks, kernel);
}

template <class T> static void put(const std::vector<T>& v) { std::fwrite(v.data(), sizeof(T), v.size(), stdout); }

static void noise() {
    long long planes = get1<long long>(), tf = get1<long long>(), n = planes * tf;
    auto values = get<float>(n);
    auto bg = get<float>(n);
    auto mask = get<unsigned char>(n);
    std::vector<double> sigma(planes);
    std::vector<unsigned char> used(planes);
    run_block_kernel(planes, [&] { plane_noise(values.data(), bg.data(), mask.data(), tf, (int)planes, sigma.data(), used.data()); });
    run_blocks(n, [&] { normalise(values.data(), bg.data(), sigma.data(), used.data(), tf, n); });
    put(sigma);
    put(used);
    put(values);
}

static void sir() {
    long long planes = get1<long long>(), nt = get1<long long>(), nf = get1<long long>();
    double eta = get1<double>();
    long long extend = get1<long long>(), tf = nt * nf, n = planes * tf;
    auto before = get<unsigned char>(n);
    std::vector<unsigned char> a(n), b(n);
    std::vector<double> scratch(n);
    run_blocks(nt * planes, [&] {
        sir_lines(before.data(), a.data(), scratch.data(), (int)nt, (int)nf, 1, (int)nf, eta, (int)extend, (int)planes, tf);
    });
    run_blocks(nf * planes, [&] {
        sir_lines(before.data(), b.data(), scratch.data(), (int)nf, 1, (int)nf, (int)nt, eta, (int)extend, (int)planes, tf);
    });
    run_blocks(n, [&] { or_flags(a.data(), b.data(), n); });
    put(a);
}

static void sumthreshold() {
    long long planes = get1<long long>(), nt = get1<long long>(), nf = get1<long long>();
    long long max_t = get1<long long>(), max_f = get1<long long>(), windows = get1<long long>();
    std::vector<std::pair<long long, float>> sched;
    for (long long k = 0; k < windows; ++k) {
        long long m = get1<long long>();
        sched.push_back({m, get1<float>()});
    }
    long long tf = nt * nf, n = planes * tf;
    auto values = get<float>(n);
    auto cur = get<unsigned char>(n);
    std::vector<unsigned char> next(n);
    for (auto [m, thr] : sched) {
        next = cur;
        // (on, lines, line step, stride, samples a line): along frequency, then time.
        long long lines_f[5] = {m <= max_f, nt, nf, 1, nf}, lines_t[5] = {m <= max_t, nf, 1, nf, nt};
        for (long long* d : {lines_f, lines_t}) {
            if (!d[0]) continue;
            run_blocks(d[1] * planes, [&] {
                sumthreshold_lines(values.data(), cur.data(), next.data(), (int)d[1], (int)d[2], (int)d[3], (int)d[4],
                                   (int)m, thr, (int)planes, tf);
            });
        }
        std::swap(cur, next);
    }
    put(cur);
}

static void background() {
    long long planes = get1<long long>(), nt = get1<long long>(), nf = get1<long long>();
    long long linear = get1<long long>();
    auto kt = get<double>(get1<long long>());
    auto kf = get<double>(get1<long long>());
    long long tf = nt * nf, n = planes * tf;
    auto values = get<float>(n);
    auto flags = get<unsigned char>(n);
    std::vector<double> v0(n), w0(n), v1(n), w1(n);
    run_blocks(n, [&] { smooth_prep(values.data(), flags.data(), n, v0.data(), w0.data()); });
    run_blocks(n, [&] {
        smooth_pass(v0.data(), w0.data(), (int)nt, (int)nf, 1, (int)nf, kf.data(), (int)(kf.size() / 2), (int)linear,
                    (int)planes, tf, v1.data(), w1.data());
    });
    run_blocks(n, [&] {
        smooth_pass(v1.data(), w1.data(), (int)nf, 1, (int)nf, (int)nt, kt.data(), (int)(kt.size() / 2), (int)linear,
                    (int)planes, tf, v0.data(), w0.data());
    });
    std::vector<float> out(n);
    run_blocks(n, [&] { smooth_narrow(v0.data(), n, out.data()); });
    put(out);
}

static void minor() {
    long long n = get1<long long>(), len = get1<long long>(), nt = get1<long long>();
    long long max_iter = get1<long long>(), m = 2 * n;
    auto rules = get<double>(6);
    std::vector<double> state = get<double>(1);
    auto hinv = get<double>(nt * nt);
    auto xs = get<int>(len);
    auto ys = get<int>(len);
    auto vals = get<double>(nt * len);
    auto psf = get<double>((2 * nt - 1) * m * m);
    std::vector<int> done(2), comp_k(max_iter);
    std::vector<double> comp_f(max_iter * nt);
    run_block_kernel(1, [&] {
        clark_minor(vals.data(), len, (int)nt, xs.data(), ys.data(), psf.data(), m, n, hinv.data(), rules.data(),
                    (int)max_iter, state.data(), done.data(), comp_k.data(), comp_f.data());
    });
    comp_k.resize(done[0]);
    comp_f.resize(done[0] * nt);
    put(done);
    put(state);
    put(comp_k);
    put(comp_f);
}

static void grid() {
    long long ng = get1<long long>(), n = get1<long long>(), segments = get1<long long>();
    long long tiles_x = get1<long long>(), support = get1<long long>();
    double beta = get1<double>();
    auto u = get<double>(n);
    auto v = get<double>(n);
    auto vis = get<double>(2 * n);
    auto ww = get<double>(n);
    auto seg_tile = get<int>(segments);
    auto seg_start = get<int>(segments + 1);
    std::vector<double> plane(2 * ng * ng);
    run_block_kernel(segments, [&] {
        grid_tiles((double2*)plane.data(), (int)ng, u.data(), v.data(), (const double2*)vis.data(), ww.data(),
                   seg_tile.data(), seg_start.data(), (int)tiles_x, (int)support, beta);
    });
    put(plane);
}

static void degrid() {
    long long ng = get1<long long>(), n = get1<long long>(), support = get1<long long>();
    double beta = get1<double>();
    auto plane = get<double>(2 * ng * ng);
    auto u = get<double>(n);
    auto v = get<double>(n);
    auto ww = get<double>(n);
    std::vector<double> out(2 * n);
    run_blocks(n, [&] {
        degrid_points((const double2*)plane.data(), (int)ng, u.data(), v.data(), ww.data(), (int)n, (int)support, beta,
                      (double2*)out.data());
    });
    put(out);
}

// The centred transform (Gpu::centred_fft_in_place): checkerboard, transform, checkerboard.
static void centred_dft2(std::vector<double2>& g, long long m, int direction) {
    run_blocks((long long)m * m, [&] { checkerboard(g.data(), (int)m); });
    dft2(g.data(), m, direction);
    run_blocks((long long)m * m, [&] { checkerboard(g.data(), (int)m); });
}

static void psf_hat() {
    long long m = get1<long long>(), mm = m * m;
    auto psf = get<double>(mm);
    std::vector<double2> g(mm);
    run_blocks(mm, [&] { real_to_complex(g.data(), psf.data(), mm); });
    centred_dft2(g, m, -1);
    std::vector<float> hat(2 * mm);
    run_blocks(mm, [&] { narrow_complex(hat.data(), g.data(), mm); });
    put(hat);
}

static void convolve() {
    long long n = get1<long long>(), terms = get1<long long>(), m = 2 * n, mm = m * m;
    auto count = get<long long>(terms);
    std::vector<std::vector<double2>> comp_hats;
    for (long long t = 0; t < terms; ++t) {
        auto idx = get<long long>(count[t]);
        auto flux = get<double>(count[t]);
        std::vector<double2> g(mm);
        run_blocks(count[t], [&] {
            place_components(g.data(), (int)m, (int)n, idx.data(), flux.data(), (int)count[t]);
        });
        centred_dft2(g, m, -1);
        comp_hats.push_back(std::move(g));
    }
    auto hats = get<float>((2 * terms - 1) * 2 * mm);
    std::vector<double> out(terms * n * n);
    for (long long tp = 0; tp < terms; ++tp) {
        std::vector<double2> acc(mm);
        for (long long t = 0; t < terms; ++t) {
            const float2* p = (const float2*)(hats.data() + (t + tp) * 2 * mm);
            run_blocks(mm, [&] { multiply_accumulate(acc.data(), comp_hats[t].data(), p, mm); });
        }
        centred_dft2(acc, m, 1);
        run_blocks(n * n, [&] { centre_real(acc.data(), (int)m, (int)n, 1.0 / (double)mm, out.data() + tp * n * n); });
    }
    put(out);
}

static void dft() {
    long long nrow = get1<long long>(), nt = get1<long long>(), nc = get1<long long>(), npts = get1<long long>();
    double dnu = get1<double>();
    auto uvw = get<double>(3 * nrow);
    auto dw = get<double>(nrow);
    auto use_row = get<unsigned char>(nrow);
    auto freqs = get<double>(nc);
    auto lmn = get<double>(3 * npts);
    auto amp = get<float>(npts * nc * nt);
    auto out = get<float>(2 * nrow * nc);
    long long runs = (nc + DFT_CHANNELS - 1) / DFT_CHANNELS;
    run_blocks(nrow * runs, [&] {
        predict_points(uvw.data(), dw.data(), use_row.data(), (int)nrow, (int)nt, freqs.data(), (int)nc, dnu,
                       lmn.data(), (int)npts, amp.data(), (float2*)out.data());
    });
    put(out);
}

int main(int argc, char** argv) {
    std::string what = argc > 1 ? argv[1] : "";
    if (argc > 2) block_threads = (unsigned int)std::atoi(argv[2]);
    try {
        if (what == "noise") noise();
        else if (what == "sir") sir();
        else if (what == "sumthreshold") sumthreshold();
        else if (what == "background") background();
        else if (what == "minor") minor();
        else if (what == "grid") grid();
        else if (what == "degrid") degrid();
        else if (what == "psf_hat") psf_hat();
        else if (what == "convolve") convolve();
        else if (what == "dft") dft();
        else {
            std::fprintf(stderr, "usage: run noise|sir|sumthreshold|background|minor|grid|degrid|psf_hat|convolve|dft [threads] < input > output\n");
            return 2;
        }
    } catch (const std::string& e) {
        std::fprintf(stderr, "%s\n", e.c_str());
        return 1;
    }
    return 0;
}
