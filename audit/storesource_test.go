package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/recguard/recguard/audit"
	"github.com/recguard/recguard/store/memory"
)

// Events appended to a store's outcome log come back through StoreSource,
// every one, decoded; a malformed one is a LineError the caller can skip.
func TestStoreSource(t *testing.T) {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	var users []string
	var lines [][]byte
	for i := 0; i < 25; i++ {
		price := float64(100 + i)
		ev := audit.Event{UserID: "u" + string(rune('a'+i%5)), Item: "sku1", Time: at.Add(time.Duration(i) * time.Minute), Mode: audit.ModePersonalized, Price: &price}
		b, _ := json.Marshal(ev)
		users, lines = append(users, ev.UserID), append(lines, b)
	}
	users, lines = append(users, "ua"), append(lines, []byte(`{"user":"ua","nonsense":1}`))
	if err := st.AppendOutcomes(ctx, users, lines); err != nil {
		t.Fatal(err)
	}
	src := audit.StoreSource(ctx, st)
	n, bad := 0, 0
	var sum float64
	for {
		ev, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *audit.LineError
		if errors.As(err, &le) {
			bad++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		sum += *ev.Price
	}
	if n != 25 || bad != 1 || sum != 25*100+300 {
		t.Fatalf("read %d events (price sum %v) and %d malformed; want 25 (sum %v) and 1", n, sum, bad, 25*100+300)
	}
}
