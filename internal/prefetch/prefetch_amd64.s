//go:build amd64 && !purego

#include "textflag.h"

// func addrs(a []uintptr)
TEXT ·addrs(SB), NOSPLIT, $0-24
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), CX
	TESTQ CX, CX
	JZ done
loop:
	MOVQ (SI), AX
	PREFETCHT0 (AX)
	ADDQ $8, SI
	DECQ CX
	JNZ loop
done:
	RET

// func linesForWrite(p unsafe.Pointer, n uintptr)
TEXT ·linesForWrite(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), CX
	LEAQ -1(AX)(CX*1), CX // the last byte
	ANDQ $~63, AX         // the first line
lines:
	// PREFETCHW (AX), which Go's assembler does not know: 0F 0D /1. A CPU
	// without it (before AMD K6-2 or Intel Broadwell) reads it as a NOP.
	BYTE $0x0F; BYTE $0x0D; BYTE $0x08
	ADDQ $64, AX
	CMPQ AX, CX
	JLS lines
	RET
