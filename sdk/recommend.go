package sdk

import (
	"context"
	"time"

	"github.com/recguard/recguard/consent"
	"github.com/recguard/recguard/tags"
)

// RankRequest is what a Ranker is given.
type RankRequest struct {
	UserID string
	// Personalized is true for the personalized ranker, false for the
	// fallback.
	Personalized bool
	// Tags are the tags the personalized ranker may use (nothing
	// suppressed, no sensitive tag without its consent, no prohibited
	// namespace). Always empty for the fallback.
	Tags []tags.Tag
}

// Ranker produces the item IDs to show. The app provides two: one that may
// use personal characteristics and one that must not.
type Ranker func(ctx context.Context, req RankRequest) ([]string, error)

// Result says what Recommend served and why.
type Result struct {
	Items []string
	// Personalized is true when the personalized ranker ran.
	Personalized bool
	// Reason is the decision's typed reason (consent.ReasonPersonalized,
	// consent.ReasonOptedOut, consent.ReasonUnverified, ...).
	Reason consent.Reason
	// Basis is the decision's basis: the record and settings versions it
	// was computed from, and its ID (the Decide answer Recommend acted on).
	consent.Basis
}

// Exposure is one recommendation served, recorded for audits (Art. 46).
type Exposure struct {
	UserID       string         `json:"user_id"`
	At           time.Time      `json:"at"`
	Personalized bool           `json:"personalized"`
	Reason       consent.Reason `json:"reason"`
	Items        []string       `json:"items"`
	// RecordVersion, SettingsVersion and DecisionID are the basis of the
	// decision the recommendation was served under (Result.Basis).
	RecordVersion   uint64             `json:"record_version"`
	SettingsVersion uint64             `json:"settings_version"`
	DecisionID      consent.DecisionID `json:"decision_id"`
}

// Recommend runs the personalized ranker only when the decision allows it,
// handing it only the tags it may use; otherwise it runs the fallback
// ranker. The Result carries the decision's reason and basis
// (Result.Basis). A ranker's error is returned as is, with the Result
// saying which one ran. When Config.ExposureSink is set, an Exposure (with
// the basis) is queued without blocking (a full queue drops it and counts
// the drop); none is recorded for a user who restricted processing of
// their data (Art. 23) or was erased (Art. 24): see Recorded. When
// Config.Ledger is set, the answer also goes to the ledger as an exposure
// with its basis (sampled by Config.LedgerSampling), queued without
// blocking or allocating: a full queue drops and counts it. The ledger
// records every reason (restricted users' exposures are evidence too; an
// erased user's entries are kept naming no one).
func (c *Client) Recommend(ctx context.Context, userID string, personalized, fallback Ranker) (Result, error) {
	d, err := c.Decide(ctx, userID)
	if err != nil && d.Reason == consent.ReasonUnknown {
		return Result{Reason: d.Reason, Basis: d.Basis}, err
	}
	res := Result{Personalized: d.Personalized, Reason: d.Reason, Basis: d.Basis}
	req := RankRequest{UserID: userID, Personalized: d.Personalized}
	if d.Personalized {
		req.Tags = d.Tags
		res.Items, err = personalized(ctx, req)
	} else {
		res.Items, err = fallback(ctx, req)
	}
	if err != nil {
		return res, err
	}
	if c.cfg.Ledger != nil {
		c.recordExposure(userID, &res, len(res.Items))
	}
	if c.cfg.ExposureSink != nil && Recorded(res.Reason) {
		select {
		case c.expq <- Exposure{UserID: userID, At: c.cfg.Now(), Personalized: res.Personalized, Reason: res.Reason, Items: res.Items,
			RecordVersion: res.RecordVersion, SettingsVersion: res.SettingsVersion, DecisionID: res.ID}:
		default:
			c.dropped.Add(1)
		}
	}
	return res, nil
}

// Recorded reports whether a recommendation served with reason may be
// recorded (an Exposure, an outcome event for audits): not for a user who
// restricted processing of their data (consent.ReasonRestricted, Art. 23:
// storage only, no audit) nor for an erased one (consent.ReasonErased,
// Art. 24). It does not allocate.
func Recorded(reason consent.Reason) bool {
	return reason != consent.ReasonRestricted && reason != consent.ReasonErased
}

// drainExposures hands queued exposures to the sink in batches.
func (c *Client) drainExposures() {
	const maxBatch = 512
	batch := make([]Exposure, 0, maxBatch)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.cfg.ExposureSink(ctx, batch); err != nil {
			c.dropped.Add(uint64(len(batch)))
		} else {
			c.sent.Add(uint64(len(batch)))
		}
		cancel()
		batch = make([]Exposure, 0, maxBatch)
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case e := <-c.expq:
			batch = append(batch, e)
			if len(batch) == maxBatch {
				flush()
			}
		case <-t.C:
			flush()
		case <-c.ctx.Done():
			for {
				select {
				case e := <-c.expq:
					batch = append(batch, e)
				default:
					flush()
					return
				}
			}
		}
	}
}
