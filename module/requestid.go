package module

import (
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"sync/atomic"
)

// requestIDPrefix is 72 random bits drawn once per process: request ids
// of several gateways sharing a store never meet.
var requestIDPrefix = func() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b) + "."
}()

var requestSeq atomic.Uint64

// newRequestID is a request id unique across processes: the process's
// random prefix and a counter. It names a charge so that the gate can void
// or refund exactly that charge (see policy.Undo).
func newRequestID() string {
	return requestIDPrefix + strconv.FormatUint(requestSeq.Add(1), 36)
}
