package index

import (
	"context"
	"errors"
	"fmt"

	"github.com/recguard/recguard/store"
)

// CatchUp brings x up to the end of every changelog by replaying what came
// after its positions. When a log was trimmed past x's position the index
// cannot be trusted, so CatchUp builds a new one from scratch and returns it
// instead (rebuilt reports which happened). x may be nil: then it builds.
func CatchUp(ctx context.Context, st store.Store, x *Index) (out *Index, rebuilt bool, err error) {
	if x == nil {
		x, err = Build(ctx, st)
		return x, true, err
	}
	if x.shards != st.Shards() {
		return nil, false, fmt.Errorf("index: checkpoint has %d shards, store %d", x.shards, st.Shards())
	}
	n := st.Shards()
	for i := 0; i <= n; i++ {
		log := i
		if i == n {
			log = store.SettingsLog
		}
		for {
			after := x.Positions()[i]
			evs, err := st.ReadChangelog(ctx, log, after, 1000, 0)
			if errors.Is(err, store.ErrTrimmed) {
				x, err = Build(ctx, st)
				return x, true, err
			}
			if err != nil {
				return nil, false, err
			}
			x.Apply(evs...)
			if len(evs) < 1000 {
				break
			}
		}
	}
	return x, false, nil
}
