// keel convolution geometry, shared by the SIMT (conv.cu) and tensor-core (conv_tc.cu) kernels.
// x: NHWC [N, H, W, C]; w: HWIO [KH, KW, C, O]; y: [N, OH, OW, O]. Output (oh, ow), tap
// (kh, kw) reads input (oh * sh - pt + kh * dh, ow * sw - pl + kw * dw).
// Mirrors `keel_cuda_kernels::ops::conv::Conv2d` (#[repr(C)]).
struct ConvParams {
    i64 n, h, w, c, oh, ow, o;
    int kh, kw, sh, sw, pt, pl, dh, dw;
};
