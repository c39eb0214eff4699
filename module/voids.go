package module

import (
	"context"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/licensegate/licensegate/policy"
)

// DefaultVoidQueue is how many undos (voids of charges whose reply the
// gate gave up on, refunds that failed, voids of lease takes /authz/ gave
// up on) a store holds for retrying.
const DefaultVoidQueue = 10000

// Backoff between attempts of an undo the store did not answer.
const (
	voidRetryInitial = 50 * time.Millisecond
	voidRetryMax     = 2 * time.Second
)

// voidQueue sends undos to a store in the background, each again and
// again until the store answers (an Undo is idempotent). It lives with the
// pooled store, so a config reload keeps what is pending. The queue is
// bounded: an undo that does not fit is dropped with an ERROR line.
type voidQueue struct {
	store   policy.Counters
	name    string
	timeout time.Duration // per attempt
	ch      chan pendingUndo
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	backoff func(attempt int) time.Duration
}

// pendingUndo is one undo in the queue: a charge's (charge) or, when
// lease is set, a lease take's.
type pendingUndo struct {
	charge policy.Undo
	lease  *policy.LeaseUndo
}

// apply sends the undo to store once.
func (p *pendingUndo) apply(ctx context.Context, store policy.Counters) error {
	if p.lease == nil {
		return store.Undo(ctx, &p.charge)
	}
	lu, ok := store.(policy.LeaseUndoer)
	if !ok {
		// A store without lease undos answers every take: nothing is
		// in doubt.
		return nil
	}
	return lu.UndoLeases(ctx, p.lease)
}

// stays is what a dropped undo leaves counted, for its ERROR line.
func (p *pendingUndo) stays() string {
	if p.lease != nil {
		return "the lease take stays counted"
	}
	return "the charge stays counted"
}

// fields describe the undo in log lines.
func (p *pendingUndo) fields() []zap.Field {
	if p.lease != nil {
		return []zap.Field{zap.String("iss", p.lease.License.Issuer), zap.String("key", p.lease.License.Key),
			zap.String("undo", "lease take")}
	}
	return []zap.Field{zap.String("iss", p.charge.Key.Issuer), zap.String("key", p.charge.Key.Key),
		zap.Int64("cost", p.charge.Cost)}
}

func newVoidQueue(store policy.Counters, name string, size int, timeout time.Duration) *voidQueue {
	q := &voidQueue{store: store, name: name, timeout: timeout, ch: make(chan pendingUndo, size),
		stop: make(chan struct{}), done: make(chan struct{}), backoff: voidBackoff}
	go q.run()
	return q
}

// voidBackoff doubles from voidRetryInitial up to voidRetryMax.
func voidBackoff(attempt int) time.Duration {
	d := voidRetryInitial << min(attempt, 10)
	return min(d, voidRetryMax)
}

// logger is the default logger at the time of the call: the queue
// outlives the config that made it.
func (q *voidQueue) logger() *zap.Logger {
	return caddy.Log().Named("http.handlers.license_gate")
}

// push queues u without blocking; when the queue is full u is dropped
// with an ERROR line (its charge stays counted).
func (q *voidQueue) push(u policy.Undo, why string) {
	q.pushPending(pendingUndo{charge: u}, why)
}

// pushLease queues the undo of a lease take as push does; when the queue
// is full it is dropped with an ERROR line (the take stays counted).
func (q *voidQueue) pushLease(u policy.LeaseUndo, why string) {
	q.pushPending(pendingUndo{lease: &u}, why)
}

func (q *voidQueue) pushPending(p pendingUndo, why string) {
	select {
	case q.ch <- p:
		voidsPending.Inc()
	default:
		voidsDropped.Inc()
		q.logger().Error("void dropped: queue full, "+p.stays(), append(p.fields(),
			zap.String("store", q.name), zap.String("reason", why), zap.Int("queue", cap(q.ch)))...)
	}
}

func (q *voidQueue) run() {
	defer close(q.done)
	for {
		select {
		case <-q.stop:
			return
		case u := <-q.ch:
			if !q.send(u) {
				return
			}
			voidsPending.Dec()
		}
	}
}

// send tries u until the store answers; false when the queue is stopping.
func (q *voidQueue) send(u pendingUndo) bool {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
		err := u.apply(ctx, q.store)
		cancel()
		if err == nil {
			return true
		}
		if attempt == 0 {
			q.logger().Warn("void not answered, retrying", zap.String("store", q.name), zap.Error(err))
		}
		select {
		case <-q.stop:
			voidsPending.Dec()
			q.logger().Error("void dropped: store closed, "+u.stays(),
				append(u.fields(), zap.String("store", q.name))...)
			return false
		case <-time.After(q.backoff(attempt)):
		}
	}
}

// close stops the queue; undos still pending are logged at ERROR.
func (q *voidQueue) close() {
	q.once.Do(func() {
		close(q.stop)
		<-q.done
		for n := len(q.ch); n > 0; n-- {
			u := <-q.ch
			voidsPending.Dec()
			q.logger().Error("void dropped: store closed, "+u.stays(),
				append(u.fields(), zap.String("store", q.name))...)
		}
	})
}
