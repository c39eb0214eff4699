package module

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/licensegate/licensegate/policy"
)

// revokedInProcess answers a license that counts nothing (no credits, no
// seats), whose only question to the store would be whether it is
// revoked, from the store's in-process view of its revocations when it
// keeps one (see policy.RevocationView): no store round trip. done is
// false when the store must be asked as usual: the license counts
// something (its script checks the revocation atomically with the
// charge), or the view does not know yet.
func (g *Gate) revokedInProcess(lic *policy.License, now time.Time) (rej *policy.Reject, done bool) {
	if lic.HasCredits || lic.Seats > 0 {
		return nil, false
	}
	if g.revocationView == nil {
		return nil, false
	}
	revoked, known := g.revocationView.IsRevoked(licenseKey(lic), now)
	if !known {
		return nil, false
	}
	if revoked {
		return policy.Rejectf(policy.CodeNotAuthorized, "the license has been revoked"), true
	}
	return nil, true
}

// revocationSyncLogger logs, for the pooled Redis store, when reading its
// revocation index starts failing (the last set read stays in force) and
// when it succeeds again.
func revocationSyncLogger(l *zap.Logger) func(error) {
	return func(err error) {
		if err != nil {
			l.Warn("revocations could not be read from the store; the last set read stays in force", zap.Error(err))
			return
		}
		l.Info("revocations read from the store again")
	}
}

// The values of StoreConfig.Revocations.
const (
	// RevocationsPushed keeps the revocations in process on each gateway
	// (the default).
	RevocationsPushed = "pushed"
	// RevocationsPerRequest asks the store on every counting request.
	RevocationsPerRequest = "per_request"
)

// pushedRevocations reports whether the Redis store keeps its revocations
// in process, refusing an unknown value.
func (sc *StoreConfig) pushedRevocations() (bool, error) {
	switch sc.Revocations {
	case "", RevocationsPushed:
		return true, nil
	case RevocationsPerRequest:
		return false, nil
	}
	return false, fmt.Errorf("store: revocations must be %s or %s, not %q", RevocationsPushed, RevocationsPerRequest, sc.Revocations)
}

// The values of StoreConfig.Blocks.
const (
	// BlocksOn serves busy licenses from credit blocks (the default).
	BlocksOn = "on"
	// BlocksOff makes every counting request one store round trip.
	BlocksOff = "off"
)

// blocksOn reports whether the Redis store serves from credit blocks:
// on by default, off with revocations per_request (a block is served
// only while the pushed revocations say the license is not revoked),
// refusing an unknown value and "on" with per_request. defaulted tells
// that blocks are off only because revocations are per_request.
func (sc *StoreConfig) blocksOn() (on, defaultedOff bool, err error) {
	pushed, err := sc.pushedRevocations()
	if err != nil {
		return false, false, err
	}
	switch sc.Blocks {
	case "":
		return pushed, !pushed, nil
	case BlocksOn:
		if !pushed {
			return false, false, fmt.Errorf("store: blocks on needs revocations %s (a block is served only while the pushed revocations say the license is not revoked)", RevocationsPushed)
		}
		return true, false, nil
	case BlocksOff:
		return false, false, nil
	}
	return false, false, fmt.Errorf("store: blocks must be %s or %s, not %q", BlocksOn, BlocksOff, sc.Blocks)
}
