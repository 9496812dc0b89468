package audit

// zeroed returns a zeroed slice of n Ts whose memory has been written.
//
// Why: a large make takes fresh pages from the system without writing
// them. When the first access to such a page is a read (an array of sums
// that is added into: read, then written), Linux maps the shared zero
// page, and the first write then takes a second, copy-on-write fault that
// flushes the page from every core's TLB (an interrupt to each core; in
// a virtual machine, an exit per core). Writing the memory first takes
// one fault per page and nothing else: the 10M-event audit spent up to a
// tenth of its CPU time in the kernel, half of it in these flushes
// (perf, docs/results.md). Use it for the large arrays that are read
// before they are written; arrays written first need no help.
func zeroed[T any](n int) []T {
	s := make([]T, n)
	clear(s) // make may not have written it: write it now
	return s
}
