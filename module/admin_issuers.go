package module

import (
	"maps"
	"slices"
	"sync"
)

// liveIssuers holds the issuers each provisioned gate accepts, so that the
// admin API can take the issuer of a license as understood while the
// running config has only one. A gate adds its list in Provision and takes
// it back in Cleanup; during a reload the old and new configs' gates are
// both listed for a moment.
var liveIssuers = struct {
	mu    sync.Mutex
	gates map[*Gate][]string
}{gates: map[*Gate][]string{}}

// acceptedIssuers lists the issuers g's keys are bound to; none when the
// gate accepts any iss.
func (g *Gate) acceptedIssuers() []string {
	if g.verifier == nil || g.verifier.bindings == nil || g.verifier.bindings.anyIssuer != nil {
		return nil
	}
	return slices.Sorted(maps.Keys(g.verifier.bindings.byIssuer))
}

// registerIssuers records the issuers g accepts (none: any iss).
func registerIssuers(g *Gate, issuers []string) {
	liveIssuers.mu.Lock()
	defer liveIssuers.mu.Unlock()
	liveIssuers.gates[g] = slices.Clone(issuers)
}

// unregisterIssuers forgets g.
func unregisterIssuers(g *Gate) {
	liveIssuers.mu.Lock()
	defer liveIssuers.mu.Unlock()
	delete(liveIssuers.gates, g)
}

// configuredIssuers is every issuer named by a live gate, sorted, each once.
func configuredIssuers() []string {
	liveIssuers.mu.Lock()
	defer liveIssuers.mu.Unlock()
	var all []string
	for _, list := range liveIssuers.gates {
		all = append(all, list...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}
