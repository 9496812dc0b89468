//go:build arm64 && !purego

#include "textflag.h"

// func addrs(a []uintptr)
TEXT ·addrs(SB), NOSPLIT, $0-24
	MOVD a_base+0(FP), R0
	MOVD a_len+8(FP), R1
	CBZ R1, done
loop:
	MOVD.P 8(R0), R2
	PRFM (R2), PLDL1KEEP
	SUB $1, R1, R1
	CBNZ R1, loop
done:
	RET

// func linesForWrite(p unsafe.Pointer, n uintptr)
TEXT ·linesForWrite(SB), NOSPLIT, $0-16
	MOVD p+0(FP), R0
	MOVD n+8(FP), R1
	ADD R0, R1, R1
	SUB $1, R1, R1 // the last byte
	AND $~63, R0   // the first line
lines:
	PRFM (R0), PSTL1KEEP
	ADD $64, R0, R0
	CMP R1, R0
	BLS lines
	RET
