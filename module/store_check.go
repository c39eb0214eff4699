package module

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// pinger is a store that can tell whether it is reachable.
type pinger interface {
	Ping(ctx context.Context) error
}

// checkStoreAtStart pings the store once, in the background and bounded by
// timeout (for Redis three store timeouts: the first PING also dials and
// handshakes, each step bounded by the store timeout), and logs at ERROR when it does not answer, so that an
// unreachable Redis shows in the log when Caddy starts rather than with
// the first request. Start never fails for it: the client reconnects by
// itself, and on_store_error decides what requests get meanwhile. The
// returned channel is closed when the check is done (for tests).
func (g *Gate) checkStoreAtStart(p pinger, addresses []string, timeout time.Duration) <-chan struct{} {
	done := make(chan struct{})
	logger := g.logger
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := p.Ping(ctx); err != nil && logger != nil {
			logger.Error("counter store unreachable at start; requests that count get on_store_error until it answers",
				zap.Strings("addresses", addresses), zap.Duration("timeout", timeout), zap.Error(err))
		}
	}()
	return done
}
