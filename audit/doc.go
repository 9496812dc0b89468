// Package audit is recguard's Art. 46 engine: it reads outcome events
// (who was shown what, at which rank and price, in which mode), puts users
// into groups named by segment expressions, and reports whether a group is
// treated unreasonably differently from a reference group, with statistics
// a statistician would accept: rates with Wilson intervals, means with t
// intervals, differences and ratios with intervals, significance tests
// (two-proportion z or Fisher's exact test, Welch's t, Mann-Whitney) and
// Benjamini-Hochberg across every test of a report; a same-item, same-time
// price comparison ("big data price discrimination against loyal users");
// and an explicit comparison of the non-personalized path against the
// personalized one. Groups under a minimum size are suppressed, so no report
// singles out a person.
//
// The package knows nothing of HTTP. Its statistics live in audit/stats.
package audit
