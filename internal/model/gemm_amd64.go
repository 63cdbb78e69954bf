package model

import "golang.org/x/sys/cpu"

// useAVX2 selects the assembly dense kernels; tests switch it off to cover the Go kernels.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

//go:noescape
func gemm4x16(a *float32, lda int, w *float32, k int, bias *float32, out *float32, ldo int, relu int)

//go:noescape
func gemm1x16(a *float32, w *float32, k int, bias *float32, out *float32, relu int)

//go:noescape
func dot4x1(a *float32, lda int, w *float32, k int, bias *float32, out *float32)

//go:noescape
func dot1x1(a *float32, w *float32, k int, bias *float32, out *float32)
