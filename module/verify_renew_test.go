package module

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licensegate/licensegate/policy"
)

// versionedSource counts key lookups (one per signature check) and has
// a version the test sets.
type versionedSource struct {
	keySource
	ver     atomic.Uint64
	lookups atomic.Int64
}

func (s *versionedSource) current() *keySet {
	s.lookups.Add(1)
	return s.keySource.current()
}

func (s *versionedSource) version() uint64 { return s.ver.Load() }

// versionedGate is a gate with one ES256 key (kid "k") whose key source
// is a versionedSource.
func versionedGate(t *testing.T) (*Gate, *testClock, *testKey, *versionedSource) {
	t.Helper()
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g, _ := provisioned(t, fileGate(t, k), clk)
	src := &versionedSource{keySource: g.verifier.bindings.anyIssuer.sources[0]}
	g.verifier.bindings.anyIssuer.sources[0] = src
	return g, clk, k, src
}

func TestACachedTokenDueForReverificationIsCheckedAgainOnlyWhenItsKeysMayHaveChanged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		keysChange bool
		wait       time.Duration
		checks     int64       // signature checks after the first
		code       policy.Code // "" when accepted
		sameLic    bool        // the cached license is served
	}{
		{"a token not yet due comes from the cache", false, time.Minute, 0, "", true},
		{"a due token whose keys stayed is kept without a signature check", false, 6 * time.Minute, 0, "", true},
		{"a due token whose keys may have changed is verified again", true, 6 * time.Minute, 1, "", false},
		{"a token past exp is verified again and rejected as expired", false, time.Hour + DefaultLeeway + time.Second, 1, policy.CodeLicenseExpired, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g, clk, k, src := versionedGate(t)
			tok := k.sign(t, claimsAt(clk), nil)
			ctx := context.Background()

			first, rej := g.verifier.verify(ctx, tok, clk.Now())
			if rej != nil {
				t.Fatal(rej)
			}
			checked := src.lookups.Load()
			if tt.keysChange {
				src.ver.Add(1)
			}
			clk.Add(tt.wait)
			got, rej := g.verifier.verify(ctx, tok, clk.Now())
			if tt.code == "" && rej != nil || tt.code != "" && (rej == nil || rej.Code != tt.code) {
				t.Fatalf("reject %v, want code %q", rej, tt.code)
			}
			if n := src.lookups.Load() - checked; n != tt.checks {
				t.Errorf("%d signature checks on the second request, want %d", n, tt.checks)
			}
			if (got.lic == first.lic) != tt.sameLic {
				t.Errorf("served the cached license: %v, want %v", got.lic == first.lic, tt.sameLic)
			}
			if tt.code != "" {
				return
			}
			// The entry is good for another cache period from now.
			clk.Add(4 * time.Minute)
			checked = src.lookups.Load()
			if lic, _ := g.verifier.cache.get(tokenHash(tok), clk.Now()); lic != got.lic {
				t.Fatal("the token is not cached for a whole period after the second request")
			}
			if _, rej := g.verifier.verify(ctx, tok, clk.Now()); rej != nil || src.lookups.Load() != checked {
				t.Fatalf("third request: reject %v, %d more signature checks", rej, src.lookups.Load()-checked)
			}
		})
	}
}

func TestACachedTokenWhoseKeyLeftTheKeyServerIsRejectedOnceDue(t *testing.T) {
	t.Parallel()
	k1, k2 := newKey(t, "k1", "ES256"), newKey(t, "k2", "ES256")
	srv := newJWKSServer(t, jwksDoc(k1.public(t)))
	r := remoteFor(t, srv.URL+"/jwks.json", false)
	waitFor(t, "the first fetch", func() bool { return r.current().has("k1") })
	clk := newClock()
	k := newKey(t, "k", "ES256")
	g, _ := provisioned(t, fileGate(t, k), clk)
	g.verifier.bindings.anyIssuer.sources[0] = r
	tok := k1.sign(t, claimsAt(clk), nil)
	ctx := context.Background()
	if _, rej := g.verifier.verify(ctx, tok, clk.Now()); rej != nil {
		t.Fatal(rej)
	}

	before := r.version()
	if err := r.load(ctx); err != nil || r.version() != before {
		t.Fatalf("the same document loaded again: err %v, version %d → %d, want unchanged", err, before, r.version())
	}
	srv.set(jwksDoc(k2.public(t)), 200)
	if err := r.load(ctx); err != nil || r.version() == before {
		t.Fatalf("another document loaded: err %v, version %d → %d, want changed", err, before, r.version())
	}
	if _, rej := g.verifier.verify(ctx, tok, clk.Now()); rej != nil {
		t.Fatalf("before it is due the cached token still passes, as it always did: %v", rej)
	}
	clk.Add(6 * time.Minute)
	if _, rej := g.verifier.verify(ctx, tok, clk.Now()); rej == nil || rej.Code != policy.CodeNotAuthorized {
		t.Fatalf("due, with its key gone from the key server: reject %v, want notAuthorized", rej)
	}
}
