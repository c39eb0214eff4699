package policy

import "time"

// RevocationView is implemented by a store that keeps every revocation in
// process (the in-memory store, or a shared store that mirrors its
// revocations into each gateway). The gate then answers a license that
// counts nothing (no credits, no seats), whose only question to the store
// would be "is it revoked?", without a store round trip.
type RevocationView interface {
	// IsRevoked reports whether key is revoked at now. known is false
	// while the view cannot answer (a shared store that has not yet read
	// its revocations once): the caller then asks the store itself.
	IsRevoked(key LicenseKey, now time.Time) (revoked, known bool)
}
