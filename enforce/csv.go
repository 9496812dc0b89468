package enforce

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"
)

// csvHeader is the header row of WriteCSV: one column per field of a
// Violation, in this order.
var csvHeader = []string{"kind", "user", "at", "event", "surface", "mode", "decided", "decision_id",
	"decision_reason", "record_version", "settings_version", "channel", "campaign", "tag",
	"receipt_id", "receipt_at", "lag_ms", "detail"}

// csvTimeLayout is RFC 3339 with nine fractional digits always, so that
// the column sorts as text too.
const csvTimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// WriteCSV writes the listed violations as CSV (RFC 4180, CRLF line ends):
// the header (kind, user, at, event, surface, mode, decided, decision_id,
// decision_reason, record_version, settings_version, channel, campaign,
// tag, receipt_id, receipt_at, lag_ms, detail), then one row per
// violation in the report's order (oldest first). The totals, coverage and notes are in the JSON and HTML
// reports only; violations counted but not listed (ViolationsOmitted) have
// no row.
//
// Times are RFC 3339 in UTC with nanoseconds; an absent time (a violation
// with no receipt) is an empty cell, as are a zero version and the lag of
// a violation with no receipt. lag_ms is in full precision with a dot as
// the decimal separator. Text cells that a spreadsheet would take for a
// formula (starting with =, +, -, @, tab or carriage return) are prefixed
// with a single quote, as in the other reports' CSV.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	cw.UseCRLF = true
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for i := range r.Violations {
		if err := cw.Write(csvRow(&r.Violations[i])); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// csvRow is one violation's row, in the order of csvHeader.
func csvRow(v *Violation) []string {
	lag := ""
	if v.ReceiptID != "" || v.LagMS != 0 {
		lag = strconv.FormatFloat(v.LagMS, 'f', -1, 64)
	}
	return []string{
		csvText(string(v.Kind)), csvText(v.User), csvTime(v.At), csvText(v.Event), csvText(v.Surface),
		csvText(v.Mode), strconv.FormatBool(v.Decided), csvText(v.DecisionID), csvText(v.DecisionReason),
		csvUint(v.RecordVersion), csvUint(v.SettingsVersion), csvText(v.Channel), csvText(v.Campaign),
		csvText(v.Tag), csvText(v.ReceiptID), csvTime(v.ReceiptAt), lag, csvText(v.Detail),
	}
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(csvTimeLayout)
}

func csvUint(n uint64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatUint(n, 10)
}

// csvText defuses a cell a spreadsheet would evaluate as a formula (the
// idea of audit's CSV, kept here: enforce does not import audit).
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
