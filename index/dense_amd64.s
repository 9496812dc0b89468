//go:build amd64 && !purego

#include "textflag.h"

// func andCountAVX512(a, b *uint64, n int) uint64
// n is a multiple of 16. See dense_amd64.go.
TEXT ·andCountAVX512(SB), NOSPLIT, $0-32
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VPXORQ Z1, Z1, Z1
	VPXORQ Z3, Z3, Z3
	SHRQ $4, CX
	JZ done
loop:
	VMOVDQU64 (SI), Z0
	VMOVDQU64 64(SI), Z2
	VPANDQ (DI), Z0, Z0
	VPANDQ 64(DI), Z2, Z2
	VPOPCNTQ Z0, Z0
	VPOPCNTQ Z2, Z2
	VPADDQ Z0, Z1, Z1
	VPADDQ Z2, Z3, Z3
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ loop
done:
	VPADDQ Z3, Z1, Z1
	VEXTRACTI64X4 $1, Z1, Y0
	VPADDQ Y0, Y1, Y1
	VEXTRACTI128 $1, Y1, X0
	VPADDQ X0, X1, X1
	VPSHUFD $0x4e, X1, X0
	VPADDQ X0, X1, X1
	VMOVQ X1, AX
	VZEROUPPER
	MOVQ AX, ret+24(FP)
	RET
