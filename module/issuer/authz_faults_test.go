package issuer

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/licensegate/licensegate/module"
	"github.com/licensegate/licensegate/policy"
)

// faultyLeaseStore is the handler's lease store with request ids, whose
// Revoke fails as a store that does not answer would, and which records
// the takes voided.
type faultyLeaseStore struct {
	module.LeaseStore
	voided []policy.LeaseUndo
}

func (f *faultyLeaseStore) LeaseRequestID() string { return "req-1" }

func (f *faultyLeaseStore) Revoke(context.Context, policy.LicenseKey, time.Time) error {
	return policy.ErrStore
}

func (f *faultyLeaseStore) VoidLeases(u policy.LeaseUndo, _ string) { f.voided = append(f.voided, u) }

// TestAReplacementWhoseRevocationFailsIsVoided: a new lease replacing one
// whose token cannot be revoked is answered 503 and its take voided, so
// the client keeps the lease it had rather than two valid tokens.
func TestAReplacementWhoseRevocationFailsIsVoided(t *testing.T) {
	h, lic := authzHandler(t)
	if w := serveAuthzTest(t, h, "/authz/.txt?word&hw=dev-a", "Bearer "+lic); w.Body.String() != "true" {
		t.Fatalf("first lease: %d %s", w.Code, w.Body)
	}
	f := &faultyLeaseStore{LeaseStore: h.authz.store}
	h.authz.store = f
	w := serveAuthzTest(t, h, "/authz/.txt?word&hw=dev-a", "Bearer "+lic)
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != "false" || w.Header().Get("Retry-After") == "" {
		t.Fatalf("replacement with the revocation failing: %d %q Retry-After %q; want 503 false", w.Code, w.Body, w.Header().Get("Retry-After"))
	}
	if len(f.voided) != 1 || f.voided[0].Request != "req-1" || f.voided[0].License.Key != "lic-"+t.Name() {
		t.Fatalf("voided %+v; want the take req-1 of the license", f.voided)
	}
}
