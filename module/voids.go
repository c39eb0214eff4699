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
// gate gave up on, refunds that failed) a store holds for retrying.
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
	ch      chan policy.Undo
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	backoff func(attempt int) time.Duration
}

func newVoidQueue(store policy.Counters, name string, size int, timeout time.Duration) *voidQueue {
	q := &voidQueue{store: store, name: name, timeout: timeout, ch: make(chan policy.Undo, size),
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
	select {
	case q.ch <- u:
		voidsPending.Inc()
	default:
		voidsDropped.Inc()
		q.logger().Error("void dropped: queue full, the charge stays counted",
			zap.String("store", q.name), zap.String("reason", why), zap.String("iss", u.Key.Issuer),
			zap.String("key", u.Key.Key), zap.Int64("cost", u.Cost), zap.Int("queue", cap(q.ch)))
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
func (q *voidQueue) send(u policy.Undo) bool {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
		err := q.store.Undo(ctx, &u)
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
			q.logger().Error("void dropped: store closed, the charge stays counted",
				zap.String("store", q.name), zap.String("iss", u.Key.Issuer), zap.String("key", u.Key.Key))
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
			q.logger().Error("void dropped: store closed, the charge stays counted",
				zap.String("store", q.name), zap.String("iss", u.Key.Issuer), zap.String("key", u.Key.Key))
		}
	})
}
