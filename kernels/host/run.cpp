// Runs kernels/residuals.cu and kernels/sir.cu on the host through shim.h, for
// compute::flag_pass's tests. Binary little-endian records on stdin and stdout:
//   noise: i64 planes, i64 plane_size, f32 values[n], f32 bg[n], u8 mask[n]
//          -> f64 sigma[planes], u8 used[planes], f32 residuals[n]
//   sir:   i64 planes, i64 nt, i64 nf, f64 eta, i64 extend, u8 flags[n] -> u8 flags[n]
#include "shim.h"
#include "../residuals.cu"
#include "../sir.cu"

#include <cstdio>
#include <string>
#include <vector>

template <class T> static std::vector<T> get(size_t n) {
    std::vector<T> v(n);
    if (n && std::fread(v.data(), sizeof(T), n, stdin) != n) throw std::string("short input");
    return v;
}
template <class T> static T get1() { return get<T>(1)[0]; }
template <class T> static void put(const std::vector<T>& v) { std::fwrite(v.data(), sizeof(T), v.size(), stdout); }

static void noise() {
    long long planes = get1<long long>(), tf = get1<long long>(), n = planes * tf;
    auto values = get<float>(n);
    auto bg = get<float>(n);
    auto mask = get<unsigned char>(n);
    std::vector<double> sigma(planes);
    std::vector<unsigned char> used(planes);
    run_blocks(planes, [&] { plane_noise(values.data(), bg.data(), mask.data(), tf, (int)planes, sigma.data(), used.data()); });
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

int main(int argc, char** argv) {
    std::string what = argc > 1 ? argv[1] : "";
    try {
        if (what == "noise") noise();
        else if (what == "sir") sir();
        else {
            std::fprintf(stderr, "usage: run noise|sir < input > output\n");
            return 2;
        }
    } catch (const std::string& e) {
        std::fprintf(stderr, "%s\n", e.c_str());
        return 1;
    }
    return 0;
}
