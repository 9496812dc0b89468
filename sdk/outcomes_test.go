package sdk_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/sdk"
	"github.com/recguard/recguard/store/memory"
)

// Recommend's exposures reach the store's outcome log through OutcomeSink,
// one event per item with its rank and the mode that served it.
func TestOutcomeSink(t *testing.T) {
	ctx := context.Background()
	st, err := memory.Open(ctx, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := newClient(t, st, sdk.Config{ExposureSink: sdk.OutcomeSink(st)})
	rank := func(context.Context, sdk.RankRequest) ([]string, error) { return []string{"a", "b"}, nil }
	if _, err := c.Recommend(ctx, "olive", rank, rank); err != nil {
		t.Fatal(err)
	}
	mustApply(t, c, consent.SetPersonalization("olive", false))
	if _, err := c.Recommend(ctx, "olive", rank, rank); err != nil {
		t.Fatal(err)
	}
	type ev struct {
		User, Item, Mode string
		Rank             float64
	}
	var got []ev
	eventually(t, 2*time.Second, "exposures in the outcome log", func() bool {
		got = got[:0]
		st.ReadOutcomes(ctx, func(b []byte) error {
			var e ev
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
			return nil
		})
		return len(got) == 4
	})
	want := []ev{{"olive", "a", "personalized", 1}, {"olive", "b", "personalized", 2}, {"olive", "a", "non_personalized", 1}, {"olive", "b", "non_personalized", 2}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("outcome %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
