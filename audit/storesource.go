package audit

import (
	"context"
	"io"

	"github.com/recguard/recguard/store"
)

// StoreSource reads the outcome events kept by a store (store.OutcomeLog:
// recorded by the SDK's exposure sink or posted to /v1/events), as a Source
// like an events file named "store". The read streams: events pass through a
// pipe, never all in memory at once. Cancel ctx to stop it early.
func StoreSource(ctx context.Context, ol store.OutcomeLog) Source {
	pr, pw := io.Pipe()
	go func() {
		nl := []byte{'\n'}
		err := ol.ReadOutcomes(ctx, func(e []byte) error {
			if _, err := pw.Write(e); err != nil {
				return err
			}
			_, err := pw.Write(nl)
			return err
		})
		pw.CloseWithError(err) // nil: io.EOF for the reader
	}()
	return ReadJSONL(pr, "store")
}
