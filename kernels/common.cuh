// Shared definitions for contimg's kernels (included by NVRTC through the source list).
#define CONTIMG_TWO_PI 6.283185307179586476925286766559
#define CONTIMG_C_M_S 299792458.0
