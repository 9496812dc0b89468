package sdk

import (
	"context"
	"encoding/json"
	"time"

	"github.com/recguard/recguard/store"
)

// outcomeEvent is one item of an exposure in the events format audits read
// (audit.Event).
type outcomeEvent struct {
	UserID string    `json:"user"`
	Item   string    `json:"item"`
	Time   time.Time `json:"time"`
	Mode   string    `json:"mode"`
	Rank   float64   `json:"rank"`
	Shown  bool      `json:"shown"`
}

// OutcomeSink returns an ExposureSink (Config.ExposureSink) that records
// every exposure in the store's outcome log, one event per item shown with
// its rank (1-based) and mode, for Art. 46 audits (audit.StoreSource reads
// them back). Exposures of users who restricted processing of their data
// or were erased (their Reason is consent.ReasonRestricted or
// consent.ReasonErased; see Recorded) are not recorded, whoever made them.
func OutcomeSink(ol store.OutcomeLog) func(ctx context.Context, batch []Exposure) error {
	return func(ctx context.Context, batch []Exposure) error {
		var users []string
		var events [][]byte
		for _, x := range batch {
			if !Recorded(x.Reason) {
				continue
			}
			mode := "non_personalized"
			if x.Personalized {
				mode = "personalized"
			}
			for i, item := range x.Items {
				b, err := json.Marshal(outcomeEvent{UserID: x.UserID, Item: item, Time: x.At.UTC(), Mode: mode, Rank: float64(i + 1), Shown: true})
				if err != nil {
					return err
				}
				users, events = append(users, x.UserID), append(events, b)
			}
		}
		if len(events) == 0 {
			return nil
		}
		return ol.AppendOutcomes(ctx, users, events)
	}
}
