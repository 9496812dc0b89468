package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/store"
	"github.com/recguard/recguard/store/memory"
	"github.com/recguard/recguard/tags"
)

func TestUsersFile(t *testing.T) {
	in := strings.Join([]string{
		`{"id":"u1","tags":["loyalty:gold","region:sh"],"flags":["consent:personalization_off","refused:sms"]}`,
		``,
		`{"id":"u2","tags":[],"flags":["minor","consent:guardian","sensitive:medical_health","erased"]}`,
		`{"id":"u3","tags":["not a tag"]}`,
		`{"id":"u4","flags":["loyalty:gold"]}`,
		`{"id":"u5","tags":["minor"]}`,
		`{"id":"","tags":[]}`,
		`{"id":"u1"}`,
		`{"id":"u6","extra":1}`,
		`{"id":"u7"} 1`,
		`{"id":"u8","tags":["a:b&c:d"]}`,
		`{"id":"u9"}`,
	}, "\n")
	uf, probs, err := UsersFile(strings.NewReader(in), "users.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	wantLines := []int64{4, 5, 6, 7, 8, 9, 10, 11}
	var lines []int64
	for _, p := range probs {
		lines = append(lines, p.Line)
		if p.File != "users.jsonl" || p.Reason == "" {
			t.Errorf("problem %+v", p)
		}
	}
	if !reflect.DeepEqual(lines, wantLines) {
		t.Fatalf("problems at lines %v, want %v: %+v", lines, wantLines, probs)
	}
	got, err := uf.Facts(context.Background(), []string{"u1", "u2", "u3", "u9", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"u1": {"loyalty:gold", "region:sh", "consent:personalization_off", "refused:sms"},
		"u2": {"minor", "consent:guardian", "sensitive:medical_health", "erased"},
		"u9": {},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("facts %v, want %v", got, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := uf.Facts(ctx, []string{"u1"}); err == nil {
		t.Error("Facts on an ended context succeeded")
	}
}

// noBatch hides the store's GetMany.
type noBatch struct{ store.Store }

func TestStoreFacts(t *testing.T) {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	apply := func(chs ...consent.Change) {
		t.Helper()
		for _, ch := range chs {
			if _, err := st.Apply(ctx, ch); err != nil {
				t.Fatalf("%s %s: %v", ch.UserID, ch.Op, err)
			}
		}
	}
	apply(
		consent.DeclareTag("u1", "interest:ski"),
		consent.RefuseChannel("u1", "sms"),
		consent.SetPersonalization("u1", false),

		consent.GrantSensitive("u2", tags.MedicalHealth, consent.PurposePersonalization),
		consent.DeclareTag("u2", "medical_health:diabetes"),
		consent.DeclareTag("u2", "interest:golf"),

		consent.DeclareTag("u3", "interest:golf"),
		consent.SetMinor("u3", true),

		consent.SetMinor("u4", true),
		consent.SetGuardian("u4", true),
		consent.DeclareTag("u4", "interest:golf"),

		consent.DeclareTag("u5", "interest:ski"),
		consent.Erase("u5"),

		consent.DeclareTag("u7", "interest:ski"),
		consent.DeleteTag("u7", "interest:ski"),
		consent.DeclareTag("u7", "interest:golf"),

		consent.DeclareTag("u8", "interest:golf"),
		consent.Restrict("u8"),
	)
	ids := []string{"u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "bad id!"}
	// u5 (erased) and u8 (restricted processing) are left out: no facts.
	want := map[string][]string{
		"u1": {"consent:personalization_off", "refused:sms", "interest:ski"},
		"u2": {"sensitive:medical_health", "interest:golf", "medical_health:diabetes"},
		"u3": {"minor"},
		"u4": {"minor", "consent:guardian", "interest:golf"},
		"u7": {"interest:golf"},
	}
	for _, uf := range []UserFacts{StoreFacts(st), StoreFacts(noBatch{st})} {
		got, err := uf.Facts(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		got2, excluded, err := uf.(ExcludingFacts).FactsExcluding(ctx, ids)
		if err != nil || !reflect.DeepEqual(got2, got) || !slices.Equal(excluded, []string{"u5", "u8"}) {
			t.Fatalf("FactsExcluding: %v, %v, excluded %v; want the same facts, excluded [u5 u8]", got2, err, excluded)
		}
		for _, fs := range got {
			slices.Sort(fs)
		}
		for _, fs := range want {
			slices.Sort(fs)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("facts\n%v\nwant\n%v", got, want)
		}
	}

	// Under new settings: a new personalization policy version makes u2's
	// sensitive consent lapse, and a new guardian policy u4's guardian
	// consent.
	set, err := st.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	set.Policies[consent.PurposePersonalization] = 2
	set.Policies[consent.PurposeGuardian] = 2
	if _, _, err := st.SetSettings(ctx, set, consent.ActorAdmin, consent.SurfaceAdminConsole); err != nil {
		t.Fatal(err)
	}
	got, err := StoreFacts(st).Facts(ctx, []string{"u2", "u4"})
	if err != nil {
		t.Fatal(err)
	}
	want = map[string][]string{"u2": {"interest:golf"}, "u4": {"minor"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("facts under new settings %v, want %v", got, want)
	}

	// The facts drive an audit as they drive the index.
	spec := Spec{
		Groups: []GroupSpec{
			{Name: "all", Segment: "*"},
			{Name: "golf", Segment: "interest:golf"},
			{Name: "minors", Segment: "minor & !consent:guardian"},
		},
		Reference:    "all",
		MinGroupSize: 1,
		Metrics:      []MetricSpec{{Name: "clicks", Kind: Rate, Field: "clicked"}},
	}
	var evs []Event
	for _, id := range ids[:8] {
		evs = append(evs, ev(id, "i1", 0, ModePersonalized, withClicked(true)))
	}
	r, err := Run(ctx, spec, sliceSource(evs), StoreFacts(st), Options{})
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]int64{}
	for _, g := range r.Groups {
		users[g.Name] = g.Users
	}
	// u5 and u8 are in no group, not even "*".
	if want := map[string]int64{"all": 6, "golf": 2, "minors": 2}; !reflect.DeepEqual(users, want) {
		t.Errorf("group users %v, want %v", users, want)
	}
	if r.Events != 8 || r.Used != 6 || r.Excluded != 2 {
		t.Errorf("events %d, used %d, excluded %d; want 8, 6, 2", r.Events, r.Used, r.Excluded)
	}
}

var userLineCorpus = []string{
	`{"id":"u1","tags":["loyalty:gold","region:sh"],"flags":["minor"]}`,
	` { "id" : "u1" , "tags" : [ ] } `,
	`{"flags":["erased"],"id":"u2"}`,
	`{"id":"u1","tags":["a:b",]}`,
	`{"id":"u1",}`,
	`{"id":"u1","id":"u2"}`,
	`{"id":"u\"1"}`,
	`{"id":"u1","tags":null}`,
	`{"id":"u1","Tags":["a:b"]}`,
	`{"id":"u1"}x`,
	`{}`,
	`{"id":1}`,
	"{\"id\":\"\xff\"}",
}

func checkUserLine(t *testing.T, line []byte) {
	var fast userLine
	if !decodeUserLine(line, &fast) {
		return
	}
	var ref userLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ref); err != nil {
		t.Fatalf("fast path took %q, encoding/json rejects it: %v", line, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("fast path took %q with trailing data", line)
	}
	if fast.ID != ref.ID || !slices.Equal(fast.Tags, ref.Tags) || !slices.Equal(fast.Flags, ref.Flags) {
		t.Fatalf("%q: fast %+v, encoding/json %+v", line, fast, ref)
	}
}

func TestDecodeUserLine(t *testing.T) {
	for _, l := range userLineCorpus {
		checkUserLine(t, []byte(l))
	}
	var u userLine
	if !decodeUserLine([]byte(userLineCorpus[0]), &u) || u.ID != "u1" || len(u.Tags) != 2 || len(u.Flags) != 1 {
		t.Fatalf("plain line refused or misread: %+v", u)
	}
}

func FuzzDecodeUserLine(f *testing.F) {
	for _, l := range userLineCorpus {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) { checkUserLine(t, line) })
}

// The users file's facts, for many users (the table grows many times):
// each user's facts as written in the file (canonical), unknown users
// absent, a repeated user refused and the first kept, and no object per
// user left for the garbage collector (IDs and facts are held in slices
// of bytes and numbers).
func TestUsersFileManyUsers(t *testing.T) {
	const n = 50_000
	var b strings.Builder
	want := map[string][]string{}
	for i := range n {
		id := fmt.Sprintf("user-%d", i)
		var fs []string
		switch i % 4 {
		case 1:
			fs = []string{"loyalty:gold"}
		case 2:
			fs = []string{"region:r" + strconv.Itoa(i%7), "loyalty:new"}
		case 3:
			fs = []string{"loyalty:vip", "consent:personalization_off", "refused:sms"}
		}
		tagsPart, flags := []string{}, []string{}
		for _, f := range fs {
			if strings.HasPrefix(f, "consent:") || strings.HasPrefix(f, "refused:") {
				flags = append(flags, f)
			} else {
				tagsPart = append(tagsPart, f)
			}
		}
		tj, _ := json.Marshal(tagsPart)
		fj, _ := json.Marshal(flags)
		fmt.Fprintf(&b, "{\"id\":%q,\"tags\":%s,\"flags\":%s}\n", id, tj, fj)
		want[id] = append(tagsPart, flags...)
	}
	b.WriteString(`{"id":"user-7","tags":["loyalty:other"]}` + "\n") // repeated: refused
	data := b.String()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	uf, probs, err := UsersFile(strings.NewReader(data), "users.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if len(probs) != 1 || probs[0].Line != n+1 || !strings.Contains(probs[0].Reason, "already listed") {
		t.Fatalf("problems %+v", probs)
	}
	if objs := int64(after.HeapObjects) - int64(before.HeapObjects); objs > 1000 {
		t.Errorf("%d objects left on the heap for %d users", objs, n)
	}
	ids := make([]string, 0, n+2)
	for id := range want {
		ids = append(ids, id)
	}
	ids = append(ids, "user-unknown", "user-50000")
	got, err := uf.Facts(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d users with facts, want %d", len(got), n)
	}
	for id, fs := range want {
		if g, ok := got[id]; !ok || !slices.Equal(g, fs) {
			t.Fatalf("%s: %v, want %v", id, g, fs)
		}
	}
	runtime.KeepAlive(uf)
}
