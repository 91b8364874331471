package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gitea.dooplex.hu/admin/felhom-agent/runtime/api"
	"gitea.dooplex.hu/admin/felhom-agent/runtime/store"
)

// maxCandidates is how many runs an ambiguous prefix's refusal lists.
const maxCandidates = 5

// getRun reads run id, or — when no run has that id — the one run whose id
// starts with it, as git resolves an abbreviated commit. The "r-" every id
// starts with may be left out. A prefix that several runs start with is
// an *api.AmbiguousError listing some of them; none is api.ErrNotFound.
func (a *Agent) getRun(ctx context.Context, id string) (store.Run, error) {
	r, err := a.store.Get(ctx, id)
	if !errors.Is(err, store.ErrNotFound) {
		return r, err
	}
	prefix := id
	if !strings.HasPrefix(prefix, "r-") && !strings.HasPrefix("r-", prefix) {
		prefix = "r-" + prefix
	}
	ids, perr := a.store.IDsWithPrefix(ctx, prefix, maxCandidates+1)
	switch {
	case perr != nil:
		return store.Run{}, perr
	case len(ids) == 1:
		return a.store.Get(ctx, ids[0])
	case len(ids) > 1:
		if len(ids) > maxCandidates {
			ids = append(ids[:maxCandidates], "...")
		}
		return store.Run{}, &api.AmbiguousError{Prefix: id, Candidates: ids}
	}
	return store.Run{}, fmt.Errorf("run %s: %w", id, api.ErrNotFound)
}
