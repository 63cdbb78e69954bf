//go:build !amd64

package model

// useAVX2 is false off amd64: the Go kernels serve.
var useAVX2 = false

func gemm4x16(a *float32, lda int, w *float32, k int, bias *float32, out *float32, ldo int, relu int) {
	panic("model: gemm4x16 without AVX2")
}

func gemm1x16(a *float32, w *float32, k int, bias *float32, out *float32, relu int) {
	panic("model: gemm1x16 without AVX2")
}

func dot4x1(a *float32, lda int, w *float32, k int, bias *float32, out *float32) {
	panic("model: dot4x1 without AVX2")
}

func dot1x1(a *float32, w *float32, k int, bias *float32, out *float32) {
	panic("model: dot1x1 without AVX2")
}
