// Package stats holds the statistics behind recguard's audit reports:
// one-pass summaries of a metric, confidence intervals for rates, means,
// differences and ratios, significance tests for two groups, and the
// Benjamini-Hochberg adjustment across every test of a report.
//
// Every function is written to give the same numbers as the reference
// implementation a statistician would check it against, R (stats package),
// or the published method it names. The tests pin each one to values
// printed in R's output or in the paper, with the source beside the value,
// and, where no printed value exists, to values derived by hand from the
// closed form with the arithmetic shown beside them.
//
// # Conventions
//
// conf is a two-sided confidence level in (0, 1), e.g. 0.95. A conf outside
// that range (or NaN) gives an interval of NaN, never a panic.
//
// Nothing here panics on degenerate input. When a quantity is undefined
// (an empty group, a variance of zero where the test divides by it) it is
// returned as NaN, and an interval that the data cannot narrow at all is the
// whole range of the parameter: [0, 1] for a proportion, [-1, 1] for a
// difference of proportions, [0, +Inf] for a ratio of proportions. Each
// function's comment says which of these it returns when.
//
// Counts are int64 and may be large (millions): Fisher's exact test works on
// log-factorials, the sign test and Student's t use the regularized
// incomplete beta function (the sign test switches to a continuity-corrected
// normal approximation above a million pairs, see SignTest), and no
// binomial coefficient is ever formed.
//
// # Special functions
//
// The normal and Student's t distributions and the regularized incomplete
// beta function come from gonum (gonum.org/v1/gonum/stat/distuv and
// gonum.org/v1/gonum/mathext, ports of the Cephes library). A well-kept,
// widely tested library is a better home for special functions than code of
// our own; this package only composes them into the methods below.
package stats
