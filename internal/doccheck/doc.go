// Package doccheck holds a test that keeps the documentation honest: every
// test that docs/compliance.md, docs/mutation.md, the other docs, README.md
// and CONTRIBUTING.md cite as proof of a rule must exist.
//
// A citation is a package directory (relative to the repository root) and a
// test, example, fuzz or benchmark function, in backticks, one per pair of
// backticks:
//
//	`sdk.TestOptOutAfterRegressionIsHonoured`
//	`store/redis.TestRestartWithoutPersistenceIsDataLoss`
//	`store/memory.TestConformance/Suppression`   (a subtest: the function is checked)
//
// The test (go test ./internal/doccheck) parses every _test.go file of the
// cited directory with go/parser and fails, naming the citation, when no
// top-level function of that name exists. In docs/compliance.md and
// docs/mutation.md a test name in backticks without its package
// (`TestFoo`) is an error too, so every citation there can be checked. The
// tests named in mutants/mutants.txt's test: lines are checked the same way.
// Nothing is read from the network.
package doccheck
