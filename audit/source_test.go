package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// drain reads src to the end, returning the events and the line errors.
func drain(t *testing.T, src Source) ([]Event, []*LineError) {
	t.Helper()
	var evs []Event
	var les []*LineError
	for range 100000 {
		ev, err := src.Next()
		if err == io.EOF {
			return evs, les
		}
		var le *LineError
		if errors.As(err, &le) {
			les = append(les, le)
			continue
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		evs = append(evs, ev)
	}
	t.Fatal("source does not end")
	return nil, nil
}

func fp(v float64) *float64 { return &v }
func bp(v bool) *bool       { return &v }

func TestReadJSONL(t *testing.T) {
	in := strings.Join([]string{
		`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","rank":2,"price":9.5,"clicked":true,"attrs":["device:ios"]}`,
		``,
		`   `,
		`{"user":"u2","item":"i1","time":"2025-03-01T10:30:00+08:00","mode":"non_personalized","discount":0,"fields":{"basket":3.5}}` + "\r",
		`{"user":"u3","item":"i2","time":"2025-03-01T10:00:00Z","mode":"personalized","bogus":1}`,
		`not json`,
		`{"user":"","item":"i2","time":"2025-03-01T10:00:00Z","mode":"personalized"}`,
		`{"user":"u4","item":"i2","time":"2025-03-01T10:00:00Z","mode":"sometimes"}`,
		`{"user":"u4","item":"i2","time":"2025-03-01T10:00:00Z","mode":"personalized"} {}`,
		`{"user":"u5","item":"i\u00e9","time":"2025-03-01T10:00:00.25Z","mode":"personalized","converted":false,"latency_ms":12}`,
		`{"user":"u6","item":"i3","mode":"personalized"}`,
		`{"user":"u6","item":"i3","time":"yesterday","mode":"personalized"}`,
		`{"user":"u7","item":"i3","time":"2025-03-01T10:00:00Z","mode":"personalized","price":-9.5}`,
		`{"user":"u7","item":"i3","time":"2025-03-01T10:00:00Z","mode":"personalized","rank":-1}`,
	}, "\n")
	evs, les := drain(t, ReadJSONL(strings.NewReader(in), "ev.jsonl"))
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 3: %+v", len(evs), evs)
	}
	want0 := Event{UserID: "u1", Item: "i1", Time: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC), Mode: ModePersonalized,
		Rank: fp(2), Price: fp(9.5), Clicked: bp(true), Attrs: []string{"device:ios"}}
	if !eventsEqual(evs[0], want0) {
		t.Errorf("event 0 = %+v, want %+v", evs[0], want0)
	}
	if !evs[1].Time.Equal(time.Date(2025, 3, 1, 2, 30, 0, 0, time.UTC)) || evs[1].Fields["basket"] != 3.5 || *evs[1].Discount != 0 {
		t.Errorf("event 1 = %+v", evs[1])
	}
	if evs[2].Item != "ié" || evs[2].Time.Nanosecond() != 250_000_000 || *evs[2].Converted || *evs[2].LatencyMS != 12 {
		t.Errorf("event 2 = %+v", evs[2])
	}
	wantLines := []int64{5, 6, 7, 8, 9, 11, 12, 13, 14}
	if len(les) != len(wantLines) {
		t.Fatalf("line errors %v, want lines %v", les, wantLines)
	}
	for i, le := range les {
		if le.Line != wantLines[i] || le.File != "ev.jsonl" || le.Reason == "" {
			t.Errorf("line error %d = %+v, want line %d", i, le, wantLines[i])
		}
	}
	for i, frag := range []string{"unknown field", "invalid character", "missing user", "mode \"sometimes\"", "after the JSON object", "missing time", "time", "price -9.5 is negative", "rank -1 is negative"} {
		if !strings.Contains(les[i].Reason, frag) {
			t.Errorf("line %d: reason %q lacks %q", les[i].Line, les[i].Reason, frag)
		}
	}
	if got := les[0].Error(); !strings.HasPrefix(got, "ev.jsonl:5: ") {
		t.Errorf("Error() = %q", got)
	}
}

func TestReadJSONLLongLineAndIOError(t *testing.T) {
	long := `{"user":"u1","item":"` + strings.Repeat("x", MaxLineBytes) + `","time":"2025-03-01T10:00:00Z","mode":"personalized"}`
	in := long + "\n" + `{"user":"u1","item":"i","time":"2025-03-01T10:00:00Z","mode":"personalized"}`
	evs, les := drain(t, ReadJSONL(strings.NewReader(in), ""))
	if len(evs) != 1 || len(les) != 1 || les[0].Line != 1 || !strings.Contains(les[0].Reason, "longer") {
		t.Fatalf("events %d, errors %+v", len(evs), les)
	}
	if got := les[0].Error(); !strings.HasPrefix(got, "line 1: ") {
		t.Errorf("Error() = %q", got)
	}
	boom := errors.New("boom")
	src := ReadJSONL(io.MultiReader(strings.NewReader(`{"user":"u1","item":"i","time":"2025-03-01T10:00:00Z","mode":"personalized"}`+"\n"), errReader{boom}), "x")
	if _, err := src.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if _, err := src.Next(); !errors.Is(err, boom) {
		t.Fatalf("err after failure = %v, want boom again", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestReadCSV(t *testing.T) {
	in := "\ufeffuser,item,time,mode,rank,price,discount,shown,clicked,converted,latency_ms,attrs,basket\n" +
		"u1,i1,2025-03-01T10:00:00Z,personalized,1,10.5,0,true,1,no,33,device:ios;region:sh,4\n" +
		"u2,i1,2025-03-01T10:00:00Z,non_personalized,,,,,,,,,\n" +
		"\n" +
		"u3,i1,2025-03-01T10:00:00Z,personalized,x,,,,,,,,\n" +
		"u4,i1,2025-03-01T10:00:00Z,personalized,1,,,maybe,,,,,\n" +
		"u5,i1,2025-03-01T10:00:00Z,personalized\n" +
		"\"u6\",\"i\n2\",2025-03-01T10:00:00Z,bad,,,,,,,,,\n" +
		"u7,i1,2025-03-01 10:00,personalized,,,,,,,,,\n" +
		"u8,i1,2025-03-01T10:00:00.5+01:00,personalized,,,,,,,,,\n"
	src, err := ReadCSV(strings.NewReader(in), "ev.csv")
	if err != nil {
		t.Fatal(err)
	}
	evs, les := drain(t, src)
	if len(evs) != 3 {
		t.Fatalf("events %+v", evs)
	}
	want0 := Event{UserID: "u1", Item: "i1", Time: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC), Mode: ModePersonalized,
		Rank: fp(1), Price: fp(10.5), Discount: fp(0), Shown: bp(true), Clicked: bp(true), Converted: bp(false), LatencyMS: fp(33),
		Attrs: []string{"device:ios", "region:sh"}, Fields: map[string]float64{"basket": 4}}
	if !eventsEqual(evs[0], want0) {
		t.Errorf("event 0 = %+v\nwant %+v", evs[0], want0)
	}
	if e := evs[1]; e.Rank != nil || e.Price != nil || e.Clicked != nil || e.Attrs != nil || e.Fields != nil || e.Mode != ModeNonPersonalized {
		t.Errorf("event 1 = %+v, want nothing recorded", e)
	}
	if !evs[2].Time.Equal(time.Date(2025, 3, 1, 9, 0, 0, 500_000_000, time.UTC)) {
		t.Errorf("event 2 time %v", evs[2].Time)
	}
	wantLines := []int64{5, 6, 7, 8, 10}
	if len(les) != len(wantLines) {
		t.Fatalf("line errors %+v, want lines %v", les, wantLines)
	}
	for i, le := range les {
		if le.Line != wantLines[i] || le.File != "ev.csv" {
			t.Errorf("line error %d = %+v, want line %d", i, le, wantLines[i])
		}
	}
	for i, frag := range []string{"rank \"x\" is not a number", "shown \"maybe\"", "4 cells for 13 columns", "mode \"bad\"", "not RFC 3339"} {
		if !strings.Contains(les[i].Reason, frag) {
			t.Errorf("reason %q lacks %q", les[i].Reason, frag)
		}
	}
}

func TestReadCSVHeader(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "no header"},
		{"user,item,time\n", "lacks column mode"},
		{"user,rank\n", "lacks column item, time, mode"},
		{"user,item,time,mode,rank,rank\n", "twice"},
		{"user,item,,time,mode\n", "no name"},
		{"user,\"item\n", "header"},
	} {
		_, err := ReadCSV(strings.NewReader(tc.in), "h.csv")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadCSV(%q) = %v, want error with %q", tc.in, err, tc.want)
		}
	}
	src, err := ReadCSV(strings.NewReader(" mode , time,item,user\n"), "h.csv")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Next(); err != io.EOF {
		t.Fatalf("Next on empty body = %v, want EOF", err)
	}
}

// eventsEqual compares events field by field (times as instants).
func eventsEqual(a, b Event) bool {
	fe := func(x, y *float64) bool {
		return (x == nil) == (y == nil) && (x == nil || *x == *y || math.IsNaN(*x) && math.IsNaN(*y))
	}
	be := func(x, y *bool) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	if a.UserID != b.UserID || a.Item != b.Item || !a.Time.Equal(b.Time) || a.Mode != b.Mode ||
		!fe(a.Rank, b.Rank) || !fe(a.Price, b.Price) || !fe(a.Discount, b.Discount) || !fe(a.LatencyMS, b.LatencyMS) ||
		!be(a.Shown, b.Shown) || !be(a.Clicked, b.Clicked) || !be(a.Converted, b.Converted) {
		return false
	}
	if len(a.Attrs) != len(b.Attrs) || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Attrs {
		if a.Attrs[i] != b.Attrs[i] {
			return false
		}
	}
	return reflect.DeepEqual(a.Fields, b.Fields) || len(a.Fields) == 0
}

// fastCorpus are lines for the fast decoder: plain ones it must take and
// odd ones it must leave to encoding/json (or decode identically).
var fastCorpus = []string{
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","rank":2,"price":9.5,"discount":0,"shown":true,"clicked":false,"converted":false,"latency_ms":31.2,"attrs":["device:ios"]}`,
	` { "user" : "u1" , "item":"i1", "time":"2025-03-01T10:00:00.123456789-07:30","mode":"non_personalized" } `,
	`{"user":"u1","item":"i1","time":"2024-02-29T23:59:59Z","mode":"personalized","fields":{"a":1,"b":-2.5e3},"attrs":[]}`,
	`{"user":"u1","item":"i1","time":"2023-02-29T23:59:59Z","mode":"personalized"}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T24:00:00Z","mode":"personalized"}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00z","mode":"personalized"}`,
	`{"user":"u1","item":"i1","time":"2025-03-01t10:00:00Z","mode":"personalized"}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00.Z","mode":"personalized"}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00.1234567891Z","mode":"personalized"}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00+24:00","mode":"personalized"}`,
	`{"user":"u\"1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized"}`,
	`{"user":"u1","User":"u2","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized"}`,
	`{"user":"u1","user":"u2","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized"}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","rank":null}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","rank":01}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","rank":1.}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","rank":-0.5E+2}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","rank":1e400}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","rank":"1"}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":1}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","shown":1,"clicked":0,"converted":1.0}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":0.000 ,"converted": 1}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":2}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":-0}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":1e0}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":01}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":1.}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":1.01}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":"true"}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":"1"}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":null}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":True}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":[1]}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":1,"clicked":0}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","Clicked":1}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","attrs":["a",]}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","fields":{"a":1,"a":2}}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized",}`,
	`{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized"}x`,
	"{\"user\":\"u\xff\",\"item\":\"i1\",\"time\":\"2025-03-01T10:00:00Z\",\"mode\":\"personalized\"}",
	"{\"user\":\"u\x01\",\"item\":\"i1\",\"time\":\"2025-03-01T10:00:00Z\",\"mode\":\"personalized\"}",
	`{}`,
	`[]`,
	`null`,
	`{"user":"ü","item":"€","time":"0000-01-01T00:00:00Z","mode":"personalized"}`,
	`{"user":"u1","item":"i1","time":"9999-12-31T23:59:59.999999999-23:59","mode":"personalized"}`,
}

// checkFastDecode asserts the fast path, when it takes a line, decodes it
// as encoding/json does.
func checkFastDecode(t *testing.T, line []byte) bool {
	var fast Event
	if !newFastDecoder().decode(line, &fast) {
		return false
	}
	var ref Event
	if err := decodeJSONEvent(line, &ref); err != nil {
		t.Fatalf("fast path took %q, encoding/json rejects it: %v", line, err)
	}
	if !eventsEqual(fast, ref) {
		t.Fatalf("fast path decoded %q as\n%+v\nencoding/json as\n%+v", line, fast, ref)
	}
	// Raw mode (Run's reader) decodes the same, pointing into the line.
	raw := newFastDecoder()
	raw.raw = true
	var rev Event
	if !raw.decode(line, &rev) || !eventsEqual(rev, ref) {
		t.Fatalf("raw mode decoded %q as\n%+v\nencoding/json as\n%+v", line, rev, ref)
	}
	return true
}

func TestFastDecoderMatchesEncodingJSON(t *testing.T) {
	took := 0
	for _, l := range fastCorpus {
		if checkFastDecode(t, []byte(l)) {
			took++
		}
	}
	if took < 5 {
		t.Errorf("fast path took only %d corpus lines", took)
	}
	// The synthetic data is all fast-path.
	var buf bytes.Buffer
	if err := Synthesize(SynthConfig{Seed: 3, Users: 50, Events: 500}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		if !checkFastDecode(t, []byte(l)) {
			t.Fatalf("fast path refused synthetic line %s", l)
		}
	}
}

// FuzzFastDecoder: the fast path decodes what it takes as encoding/json
// (with jsonBoolField) does; and the yes/no value of a line, when JSON
// takes it, CSV takes as the same value (checkBoolAgreement).
func FuzzFastDecoder(f *testing.F) {
	for _, l := range fastCorpus {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkFastDecode(t, line)
		checkBoolAgreement(t, line)
	})
}

// checkBoolAgreement takes the line as a yes/no value: when JSON accepts
// it as the value of clicked (other than null), CSV must accept the same
// text in the clicked column with the same meaning.
func checkBoolAgreement(t *testing.T, val []byte) {
	if bytes.ContainsAny(val, "\r\n\",\"") || len(val) > 200 {
		return
	}
	head := `{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized","clicked":`
	var jev Event
	if err := decodeJSONEvent([]byte(head+string(val)+"}"), &jev); err != nil || jev.Clicked == nil {
		return // refused, or null: not recorded, an empty cell in CSV
	}
	src, err := ReadCSV(strings.NewReader("user,item,time,mode,clicked\nu1,i1,2025-03-01T10:00:00Z,personalized,"+string(val)+"\n"), "f.csv")
	if err != nil {
		t.Fatal(err)
	}
	cev, cerr := src.Next()
	if cerr != nil {
		t.Fatalf("JSON takes clicked %q (%v), CSV refuses it: %v", val, jev.Clicked, cerr)
	}
	if (jev.Clicked == nil) != (cev.Clicked == nil) || jev.Clicked != nil && *jev.Clicked != *cev.Clicked {
		t.Fatalf("clicked %q: JSON %v, CSV %v", val, ptrStr(jev.Clicked), ptrStr(cev.Clicked))
	}
}

func ptrStr(b *bool) string {
	if b == nil {
		return "nil"
	}
	return strconv.FormatBool(*b)
}

// TestSourceBooleans: yes/no fields take true/false and 0/1 (also 1.0) in JSON
// lines and in CSV, the same values with the same meanings; JSON strings
// and other numbers are malformed lines with a reason that says what to
// write.
func TestSourceBooleans(t *testing.T) {
	head := `{"user":"u1","item":"i1","time":"2025-03-01T10:00:00Z","mode":"personalized"`
	for _, c := range []struct {
		val  string
		want string // "true", "false", "nil", or a fragment of the error
	}{
		{"true", "true"}, {"false", "false"}, {"1", "true"}, {"0", "false"}, {"1.0", "true"}, {"0.00", "false"},
		{"null", "nil"},
		{`"true"`, "is a string: write true, false, 1 or 0, without quotes"},
		{`"1"`, "is a string"},
		{`""`, "is a string"},
		{"2", "clicked 2 is not true, false, 1 or 0"},
		{"-1", "is not true, false, 1 or 0"},
		{"-0", "is not true, false, 1 or 0"},
		{"1e0", "is not true, false, 1 or 0"},
		{"0.5", "is not true, false, 1 or 0"},
		{"1.", "invalid character"},
		{"{}", "is not true, false, 1 or 0"},
		{"[true]", "is not true, false, 1 or 0"},
	} {
		for _, fast := range []bool{true, false} {
			line := head + `,"clicked":` + c.val + "}"
			if !fast {
				// A key the fast path leaves to encoding/json.
				line = head + `,"clicked":` + c.val + `,"attrs":["a\u0062"]}`
			}
			evs, les := drain(t, ReadJSONL(strings.NewReader(line), "b.jsonl"))
			switch c.want {
			case "true", "false", "nil":
				if len(evs) != 1 || ptrStr(evs[0].Clicked) != c.want {
					t.Errorf("clicked %s (fast %v): events %+v errors %v, want %s", c.val, fast, evs, les, c.want)
				}
			default:
				if len(les) != 1 || !strings.Contains(les[0].Reason, c.want) {
					t.Errorf("clicked %s (fast %v): errors %v, want %q", c.val, fast, les, c.want)
				}
			}
		}
		checkBoolAgreement(t, []byte(c.val))
	}
	// The fast path takes the numbers itself.
	var ev Event
	if !newFastDecoder().decode([]byte(head+`,"shown":1,"clicked":0,"converted":1.0}`), &ev) ||
		!*ev.Shown || *ev.Clicked || !*ev.Converted {
		t.Errorf("fast path on 0/1: %+v", ev)
	}

	// CSV: the same values, as text, and its own spellings.
	in := "user,item,time,mode,shown,clicked,converted\n" +
		"u1,i1,2025-03-01T10:00:00Z,personalized,1,0,1.0\n" +
		"u1,i1,2025-03-01T10:00:00Z,personalized,TRUE,False,0.0\n" +
		"u1,i1,2025-03-01T10:00:00Z,personalized,yes,n,\n" +
		"u1,i1,2025-03-01T10:00:00Z,personalized,2,,\n" +
		"u1,i1,2025-03-01T10:00:00Z,personalized,,-1,\n" +
		"u1,i1,2025-03-01T10:00:00Z,personalized,,,1e0\n"
	src, err := ReadCSV(strings.NewReader(in), "b.csv")
	if err != nil {
		t.Fatal(err)
	}
	evs, les := drain(t, src)
	got := func(e Event) string {
		return ptrStr(e.Shown) + "," + ptrStr(e.Clicked) + "," + ptrStr(e.Converted)
	}
	if len(evs) != 3 || got(evs[0]) != "true,false,true" || got(evs[1]) != "true,false,false" || got(evs[2]) != "true,false,nil" {
		t.Errorf("CSV events %d: %v", len(evs), evs)
	}
	if len(les) != 3 || !strings.Contains(les[0].Reason, `shown "2" is not true, false, 1 or 0`) ||
		!strings.Contains(les[1].Reason, `clicked "-1"`) || !strings.Contains(les[2].Reason, `converted "1e0"`) {
		t.Errorf("CSV errors %v", les)
	}
}

// TestSourceCheckMalformed: over the share allowed, or every line, fails with a
// *MalformedError naming the first lines; at or under it, nothing.
func TestSourceCheckMalformed(t *testing.T) {
	probs := func(n int) []LineProblem {
		var ps []LineProblem
		for i := range min(n, MaxProblems) {
			ps = append(ps, LineProblem{File: "ev.jsonl", Line: int64(2*i + 1), Reason: "invalid character 'x'"})
		}
		return ps
	}
	for _, c := range []struct {
		events, skipped int64
		max             float64
		want            string // "" for no error
	}{
		{100, 0, 0.1, ""},
		{0, 0, 0.1, ""}, // an empty input is not malformed
		{90, 10, 0.1, ""},
		{89, 11, 0.1, "11 of 100 input lines are malformed (11%), more than the 10% allowed; the first: ev.jsonl:1: invalid character 'x'; ev.jsonl:3: "},
		{1, 1, 0.5, ""},
		{1, 2, 0.5, "2 of 3 input lines are malformed (66.7%), more than the 50% allowed"},
		{0, 30, 1, "all 30 input lines are malformed; the first: ev.jsonl:1: "},
		{0, 1, 1, "the only input line is malformed; the first: ev.jsonl:1: invalid character 'x'"},
		{1000, 1, 0, "1 of 1001 input lines are malformed (0.1%), more than the 0% allowed"},
		{1000, 1, -1, "more than the 0% allowed"},
		{8999, 1001, 0.1, "1001 of 10000 input lines are malformed (10.01%), more than the 10% allowed"},
	} {
		r := &Report{Events: c.events, Skipped: c.skipped, Problems: probs(int(c.skipped))}
		err := r.CheckMalformed(c.max)
		if c.want == "" {
			if err != nil {
				t.Errorf("%d events, %d malformed, max %v: %v", c.events, c.skipped, c.max, err)
			}
			continue
		}
		var me *MalformedError
		if !errors.Is(err, ErrTooManyMalformed) || !errors.As(err, &me) || !strings.Contains(err.Error(), c.want) ||
			!strings.HasPrefix(err.Error(), "audit: too many malformed input lines: ") {
			t.Errorf("%d events, %d malformed, max %v: %v, want %q", c.events, c.skipped, c.max, err, c.want)
			continue
		}
		if me.Lines != c.events+c.skipped || me.Malformed != c.skipped || len(me.First) != min(int(c.skipped), 5) {
			t.Errorf("error %+v", me)
		}
		if c.skipped > 5 && !strings.HasSuffix(err.Error(), fmt.Sprintf("; and %d more", c.skipped-5)) {
			t.Errorf("no count of the rest: %v", err)
		}
	}
}

// TestSourceRunAllMalformed: a run over lines that are all malformed gives a
// report CheckMalformed fails, and Strict fails at the first line.
func TestSourceRunAllMalformed(t *testing.T) {
	spec := Spec{Groups: []GroupSpec{{Name: "all", Segment: "*"}}, Reference: "all"}
	in := "not json\n{\"user\":\"u1\"}\n\n[]\n"
	rep, err := Run(context.Background(), spec, ReadJSONL(strings.NewReader(in), "bad.jsonl"), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = rep.CheckMalformed(DefaultMaxMalformed)
	if !errors.Is(err, ErrTooManyMalformed) || !strings.Contains(err.Error(), "all 3 input lines are malformed; the first: bad.jsonl:1: invalid character") ||
		!strings.Contains(err.Error(), "bad.jsonl:2: missing item") || !strings.Contains(err.Error(), "bad.jsonl:4: ") {
		t.Errorf("all malformed: %v", err)
	}
	if _, err := Run(context.Background(), spec, ReadJSONL(strings.NewReader(in), "bad.jsonl"), nil, Options{Strict: true}); err == nil || !strings.Contains(err.Error(), "bad.jsonl:1: ") {
		t.Errorf("strict: %v", err)
	}
	src, err := ReadCSV(strings.NewReader("user,item,time,mode\nu1,,,\nu2,i,yesterday,personalized\n"), "bad.csv")
	if err != nil {
		t.Fatal(err)
	}
	rep, err = Run(context.Background(), spec, src, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.CheckMalformed(1); !errors.Is(err, ErrTooManyMalformed) || !strings.Contains(err.Error(), "all 2 input lines") {
		t.Errorf("all malformed CSV, even with everything allowed: %v", err)
	}
}

func TestFastDecoderNoAllocs(t *testing.T) {
	line := []byte(fastCorpus[0])
	d := newFastDecoder()
	var ev Event
	d.decode(line, &ev)
	allocs := testing.AllocsPerRun(1000, func() {
		ev = Event{}
		if !d.decode(line, &ev) {
			t.Fatal("refused")
		}
	})
	// The user and item strings are allocated (interning them costs more
	// than it saves); nothing else is.
	if allocs > 2.1 {
		t.Errorf("%.2f allocations per line, want 2", allocs)
	}
}

func TestSimpleDecimal(t *testing.T) {
	check := func(lit string) {
		t.Helper()
		v, ok := simpleDecimal([]byte(lit))
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(lit, 64)
		if err != nil || math.Float64bits(v) != math.Float64bits(want) {
			t.Fatalf("simpleDecimal(%q) = %v, ParseFloat %v (%v)", lit, v, want, err)
		}
	}
	for _, lit := range []string{"0", "-0", "-0.0", "0.1", "0.3", "123456789012345", "1234567890123456", "0.000000000000001",
		"999999999999999", "99999999999999.9", "9007199254740993", "1.5", "-2.25", "12.34", "100", "0.07"} {
		check(lit)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50000 {
		nd := 1 + rng.IntN(15)
		digits := make([]byte, nd)
		for i := range digits {
			digits[i] = byte('0' + rng.IntN(10))
		}
		lit := string(digits)
		if p := rng.IntN(nd + 1); p < nd && p > 0 {
			lit = lit[:p] + "." + lit[p:]
		}
		if rng.IntN(2) == 0 {
			lit = "-" + lit
		}
		check(lit)
	}
	if _, ok := simpleDecimal([]byte("1e5")); ok {
		t.Error("exponent taken")
	}
}
