#include "textflag.h"

// func gemm4x16(a *float32, lda int, w *float32, k int, bias *float32, out *float32, ldo int, relu int)
//
// out[r][0:16] = bias[0:16] + sum_kk a[r][kk] * w[kk][0:16] for rows r = 0..3, then max(·, 0) when
// relu != 0. a and out are row-major with row strides lda and ldo (in floats); w is k×16,
// contiguous. k must be at least 1.
TEXT ·gemm4x16(SB), NOSPLIT, $0-64
	MOVQ a+0(FP), SI
	MOVQ lda+8(FP), R8
	SHLQ $2, R8
	MOVQ w+16(FP), DI
	MOVQ k+24(FP), CX
	MOVQ bias+32(FP), BX
	MOVQ out+40(FP), DX
	MOVQ ldo+48(FP), R9
	SHLQ $2, R9
	MOVQ relu+56(FP), R10

	VMOVUPS (BX), Y0
	VMOVUPS 32(BX), Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y1, Y3
	VMOVAPS Y0, Y4
	VMOVAPS Y1, Y5
	VMOVAPS Y0, Y6
	VMOVAPS Y1, Y7

	LEAQ (SI)(R8*1), R11
	LEAQ (R11)(R8*1), R12
	LEAQ (R12)(R8*1), R13
	XORQ AX, AX

loop4:
	VMOVUPS (DI), Y8
	VMOVUPS 32(DI), Y9
	VBROADCASTSS (SI)(AX*1), Y10
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y1
	VBROADCASTSS (R11)(AX*1), Y11
	VFMADD231PS Y8, Y11, Y2
	VFMADD231PS Y9, Y11, Y3
	VBROADCASTSS (R12)(AX*1), Y12
	VFMADD231PS Y8, Y12, Y4
	VFMADD231PS Y9, Y12, Y5
	VBROADCASTSS (R13)(AX*1), Y13
	VFMADD231PS Y8, Y13, Y6
	VFMADD231PS Y9, Y13, Y7
	ADDQ $64, DI
	ADDQ $4, AX
	DECQ CX
	JNZ loop4

	TESTQ R10, R10
	JZ store4
	// max(0, x) with the zero as first source keeps NaN, like Go's max.
	VXORPS Y14, Y14, Y14
	VMAXPS Y0, Y14, Y0
	VMAXPS Y1, Y14, Y1
	VMAXPS Y2, Y14, Y2
	VMAXPS Y3, Y14, Y3
	VMAXPS Y4, Y14, Y4
	VMAXPS Y5, Y14, Y5
	VMAXPS Y6, Y14, Y6
	VMAXPS Y7, Y14, Y7

store4:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	ADDQ R9, DX
	VMOVUPS Y2, (DX)
	VMOVUPS Y3, 32(DX)
	ADDQ R9, DX
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ R9, DX
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	VZEROUPPER
	RET

// func gemm1x16(a *float32, w *float32, k int, bias *float32, out *float32, relu int)
//
// The one-row form of gemm4x16, for the rows left over.
TEXT ·gemm1x16(SB), NOSPLIT, $0-48
	MOVQ a+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ k+16(FP), CX
	MOVQ bias+24(FP), BX
	MOVQ out+32(FP), DX
	MOVQ relu+40(FP), R10

	VMOVUPS (BX), Y0
	VMOVUPS 32(BX), Y1

loop1:
	VBROADCASTSS (SI), Y10
	VFMADD231PS (DI), Y10, Y0
	VFMADD231PS 32(DI), Y10, Y1
	ADDQ $64, DI
	ADDQ $4, SI
	DECQ CX
	JNZ loop1

	TESTQ R10, R10
	JZ store1
	VXORPS Y14, Y14, Y14
	VMAXPS Y0, Y14, Y0
	VMAXPS Y1, Y14, Y1

store1:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	VZEROUPPER
	RET

// func dot4x1(a *float32, lda int, w *float32, k int, bias *float32, out *float32)
//
// out[r] = bias[0] + sum_kk a[r][kk] * w[kk] for rows r = 0..3: a layer with a single output.
// k must be a positive multiple of 8; a is row-major with row stride lda (in floats).
TEXT ·dot4x1(SB), NOSPLIT, $0-48
	MOVQ a+0(FP), SI
	MOVQ lda+8(FP), R8
	SHLQ $2, R8
	MOVQ w+16(FP), DI
	MOVQ k+24(FP), CX
	SHRQ $3, CX
	MOVQ bias+32(FP), BX
	MOVQ out+40(FP), DX

	LEAQ (SI)(R8*1), R11
	LEAQ (R11)(R8*1), R12
	LEAQ (R12)(R8*1), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ AX, AX

loopd:
	VMOVUPS (DI)(AX*1), Y8
	VFMADD231PS (SI)(AX*1), Y8, Y0
	VFMADD231PS (R11)(AX*1), Y8, Y1
	VFMADD231PS (R12)(AX*1), Y8, Y2
	VFMADD231PS (R13)(AX*1), Y8, Y3
	ADDQ $32, AX
	DECQ CX
	JNZ loopd

	// Fold each row's eight partial sums, then the four rows into one vector.
	VEXTRACTF128 $1, Y0, X4
	VADDPS X4, X0, X0
	VEXTRACTF128 $1, Y1, X4
	VADDPS X4, X1, X1
	VEXTRACTF128 $1, Y2, X4
	VADDPS X4, X2, X2
	VEXTRACTF128 $1, Y3, X4
	VADDPS X4, X3, X3
	VHADDPS X1, X0, X0
	VHADDPS X3, X2, X2
	VHADDPS X2, X0, X0
	VBROADCASTSS (BX), X5
	VADDPS X5, X0, X0
	VMOVUPS X0, (DX)
	VZEROUPPER
	RET

// func dot1x1(a *float32, w *float32, k int, bias *float32, out *float32)
//
// The one-row form of dot4x1, summing in the same order so that a row's result does not depend
// on where it falls in a batch.
TEXT ·dot1x1(SB), NOSPLIT, $0-40
	MOVQ a+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ k+16(FP), CX
	SHRQ $3, CX
	MOVQ bias+24(FP), BX
	MOVQ out+32(FP), DX
	VXORPS Y0, Y0, Y0
	XORQ AX, AX

loopd1:
	VMOVUPS (DI)(AX*1), Y8
	VFMADD231PS (SI)(AX*1), Y8, Y0
	ADDQ $32, AX
	DECQ CX
	JNZ loopd1

	VEXTRACTF128 $1, Y0, X4
	VADDPS X4, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS (BX), X5
	VADDSS X5, X0, X0
	VMOVSS X0, (DX)
	VZEROUPPER
	RET
