//go:build amd64 && !purego

package index

import "golang.org/x/sys/cpu"

// andCountAVX512 returns the number of bits set in both of the n words at
// a and b (n a multiple of 16), with AVX-512 (dense_amd64.s).
//
//go:noescape
func andCountAVX512(a, b *uint64, n int) uint64

// useAVX512 says the CPU and the OS support the AVX-512 instructions
// andCountAVX512 uses (VPOPCNTQ).
var useAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512VPOPCNTDQ

// andCountFast is andCount, with AVX-512 where there is.
func andCountFast(a, b []uint64) uint64 {
	n := min(len(a), len(b))
	if !useAVX512 || n < 16 {
		return andCount(a, b)
	}
	m := n &^ 15
	return andCountAVX512(&a[0], &b[0], m) + andCount(a[m:n], b[m:n])
}

// vectorAndCount says whether andCountFast uses vector instructions.
var vectorAndCount = useAVX512
