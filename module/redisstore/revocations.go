package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licensegate/licensegate/policy"
)

// Pushed revocations. Besides the license's own revoked key (which the
// charge script checks atomically with the credits and the seat), Revoke
// and Unrevoke keep an index that every gateway can read in one command,
// and publish the change:
//
//   - the index is the sorted set <prefix>revocations: member the
//     license's hash tag (see Tag), score the revocation's end in unix ms.
//     It is one well-known key, so it lives in one Cluster slot; the charge
//     script, which touches one license's slot only, never reads it.
//   - the channel <prefix>revocations carries "<until ms> <tag>" for a
//     revocation and "0 <tag>" for its lifting (then the origin, see
//     revocationWatch). It also carries the credit changes of blocks.go,
//     "credits …", whose first word is no number: a revocation watch (of
//     this version or an older one) skips them as malformed.
//
// A Store that watches (WatchRevocations) keeps the set of revoked tags in
// process: it applies each message at once and reads the whole index again
// every few seconds and after each (re)subscription, which covers lost
// messages, a subscriber that reconnects and a gateway that starts late.
// While Redis cannot be reached the last set read stays in force.

// DefaultRevocationSync is how often a watching Store reads the whole
// revocation index again.
const DefaultRevocationSync = 2 * time.Second

// revocationsName is the index key and the channel, after the prefix.
const revocationsName = "revocations"

// tagBytes is a license's hash tag (Tag) in an array, as a map key.
type tagBytes [TagLen]byte

func tagArray(k policy.LicenseKey) tagBytes {
	var t tagBytes
	tagOf((*[TagLen]byte)(&t), k)
	return t
}

// shard is the index of the shard holding t: its first two hex digits.
func (t *tagBytes) shard() int {
	return unhex(t[0])<<4 | unhex(t[1])
}

// unhex is the value of a lowercase hex digit.
func unhex(c byte) int {
	if c <= '9' {
		return int(c - '0')
	}
	return int(c-'a') + 10
}

// revokedSet maps a revoked license's tag to the revocation's end in ms.
// A published set is never changed: a change copies it. The set is split
// in revokedShards by the tag's first two digits, so that a change copies
// one shard, and revoking many licenses one by one stays cheap.
type revokedSet map[tagBytes]int64

const revokedShards = 256

// revocationWatch is a Store's in-process view of the revocation index.
type revocationWatch struct {
	every   time.Duration
	onError func(error)
	// origin names this watch in the messages it publishes: it applies
	// its own changes at once and in order, so their messages, which may
	// arrive after a later change of its own, are skipped.
	origin string

	known  atomic.Bool  // the index was read once
	count  atomic.Int64 // entries over all shards
	shards [revokedShards]atomic.Pointer[revokedSet]

	mu      sync.Mutex // serialises changes to the shards
	reading bool       // a read of the index is under way
	since   []revocationUpdate

	ps      *redis.PubSub
	resync  chan struct{}
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
}

// revocationUpdate is one change: until 0 lifts the revocation.
type revocationUpdate struct {
	tag   tagBytes
	until int64
}

func (s *Store) revocationsKey() string { return s.prefix + revocationsName }

// WatchRevocations starts keeping the store's revocations in process, so
// that IsRevoked can answer without a round trip: it subscribes to the
// revocation channel and reads the whole index at once, then every every
// (DefaultRevocationSync when 0) and after each (re)subscription.
// onError, when not nil, is called with the error when reading the index
// starts failing and with nil when it succeeds again. Close stops it. It
// must be called at most once, before the store is shared.
func (s *Store) WatchRevocations(every time.Duration, onError func(error)) {
	if every <= 0 {
		every = DefaultRevocationSync
	}
	w := &revocationWatch{every: every, onError: onError, origin: newOrigin(),
		resync: make(chan struct{}, 1), stop: make(chan struct{})}
	// No channel yet, so no connection: the receiving loop subscribes,
	// and the caller (Caddy provisioning a config) does not wait for it.
	w.ps = s.client.Subscribe(context.Background())
	s.watch = w
	w.wg.Add(2)
	go s.receiveRevocations(w)
	go s.syncRevocations(w)
}

// stopWatching ends the watch's goroutines and waits for them.
func (w *revocationWatch) stopWatching() {
	if w == nil {
		return
	}
	w.stopped.Do(func() {
		close(w.stop)
		// Closing the PubSub ends a Receive that is waiting.
		_ = w.ps.Close()
		w.wg.Wait()
	})
}

// IsRevoked implements policy.RevocationView from the in-process set:
// known is false until the index was read once (or when the store does
// not watch).
func (s *Store) IsRevoked(key policy.LicenseKey, now time.Time) (revoked, known bool) {
	if s.watch == nil {
		return false, false
	}
	w := s.watch
	if !w.known.Load() {
		return false, false
	}
	if w.count.Load() == 0 {
		return false, true
	}
	t := tagArray(key)
	until, ok := (*w.shards[t.shard()].Load())[t]
	return ok && until > now.UnixMilli(), true
}

// publishRevocation records a revocation (until ms > 0) or its lifting
// (0) in the index and on the channel, after the license's own key was
// written, and applies it to this gateway's set at once.
func (s *Store) publishRevocation(ctx context.Context, key policy.LicenseKey, until int64) error {
	tag := Tag(key)
	idx := s.revocationsKey()
	// Three commands, no transaction: the index key and the channel are
	// not in the license's slot. Each is idempotent, so a retry by
	// go-redis or by the operator repeats them harmlessly.
	var change redis.Cmder
	var publish *redis.IntCmd
	_, _ = s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		if until > 0 {
			change = p.ZAdd(ctx, idx, redis.Z{Score: float64(until), Member: tag})
		} else {
			change = p.ZRem(ctx, idx, tag)
		}
		// Forget revocations that have ended.
		p.ZRemRangeByScore(ctx, idx, "-inf", strconv.FormatInt(time.Now().UnixMilli(), 10))
		origin := "-"
		if s.watch != nil {
			origin = s.watch.origin
		}
		publish = p.Publish(ctx, idx, strconv.FormatInt(until, 10)+" "+tag+" "+origin)
		return nil
	})
	// The index must hold the change; the message only makes it arrive
	// sooner. A PUBLISH that failed (lost, or refused to a Redis user
	// without the channel) leaves the other gateways to read the index
	// within their interval.
	if err := change.Err(); err != nil {
		return err
	}
	_ = publish.Err()
	if s.watch != nil {
		s.watch.apply(revocationUpdate{tag: tagArray(key), until: until})
	}
	return nil
}

// apply changes the published set (once there is one) by u, and notes u
// when a read of the index is under way, so the read does not undo it.
func (w *revocationWatch) apply(u revocationUpdate) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reading {
		w.since = append(w.since, u)
	}
	if !w.known.Load() {
		return
	}
	shard := &w.shards[u.tag.shard()]
	old := *shard.Load()
	next := make(revokedSet, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next.apply(u)
	shard.Store(&next)
	w.count.Add(int64(len(next) - len(old)))
}

func (rs revokedSet) apply(u revocationUpdate) {
	if u.until > 0 {
		rs[u.tag] = u.until
	} else {
		delete(rs, u.tag)
	}
}

// parseRevocation reads a channel message, "<until ms> <tag> [<origin>]";
// ok is false for a malformed one.
func parseRevocation(msg string) (u revocationUpdate, origin string, ok bool) {
	ms, tag, found := strings.Cut(msg, " ")
	if !found {
		return u, "", false
	}
	tag, origin, _ = strings.Cut(tag, " ")
	until, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || until < 0 {
		return u, "", false
	}
	t, ok := parseTag(tag)
	return revocationUpdate{tag: t, until: until}, origin, ok
}

// newOrigin is a random name for a watch's messages.
func newOrigin() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// parseTag reads a tag as Tag writes it: TagLen lowercase hex digits.
func parseTag(s string) (tagBytes, bool) {
	var t tagBytes
	if len(s) != TagLen {
		return t, false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return t, false
		}
		t[i] = c
	}
	return t, true
}

// receiveRevocations applies the channel's messages until stopped. After
// each (re)subscription it asks for a read of the index: messages sent
// while it was not subscribed are lost.
func (s *Store) receiveRevocations(w *revocationWatch) {
	defer w.wg.Done()
	receive(w.ps, s.revocationsKey(), w.every, w.stop, w.askResync, func(payload string) {
		if u, origin, ok := parseRevocation(payload); ok && origin != w.origin {
			w.apply(u)
		}
	})
}

// receive subscribes ps to channel and hands each message's payload to
// onMessage, and each (re)subscription to onSubscribe, until stop is
// closed (or ps is). every paces the checks of a silent connection and
// bounds the wait between reconnections.
func receive(ps *redis.PubSub, channel string, every time.Duration, stop <-chan struct{},
	onSubscribe func(), onMessage func(string)) {
	ctx := context.Background()
	// Subscribe records the channel even when Redis is down; each
	// receive then connects (and subscribes) when it can.
	_ = ps.Subscribe(ctx, channel)
	var backoff time.Duration // none before the first reconnection
	for {
		// A bounded wait, then a PING on the same connection: a
		// connection that died silently is found and replaced.
		msg, err := ps.ReceiveTimeout(ctx, 4*every)
		if err != nil {
			if errors.Is(err, redis.ErrClosed) || isClosed(stop) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = ps.Ping(ctx)
				continue
			}
			// The connection broke: go-redis dials again (and
			// resubscribes) on the next receive, at once the first time,
			// then after a wait growing up to the interval while Redis
			// cannot be reached.
			select {
			case <-stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), every)
			continue
		}
		backoff = 0
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && onSubscribe != nil {
				onSubscribe()
			}
		case *redis.Message:
			onMessage(m.Payload)
		}
	}
}

// isClosed tells whether stop is closed.
func isClosed(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func (w *revocationWatch) askResync() {
	select {
	case w.resync <- struct{}{}:
	default:
	}
}

// syncRevocations reads the index at once, then every w.every and when
// asked, until stopped.
func (s *Store) syncRevocations(w *revocationWatch) {
	defer w.wg.Done()
	t := time.NewTicker(w.every)
	defer t.Stop()
	var failing error
	for {
		err := s.readRevocations(w)
		if (err == nil) != (failing == nil) && w.onError != nil {
			w.onError(err)
		}
		failing = err
		select {
		case <-w.stop:
			return
		case <-t.C:
		case <-w.resync:
		}
	}
}

// readRevocations replaces the set by the index's live entries, then
// replays the changes that arrived meanwhile.
func (s *Store) readRevocations(w *revocationWatch) error {
	w.mu.Lock()
	w.reading, w.since = true, nil
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.reading, w.since = false, nil
		w.mu.Unlock()
	}()

	ctx, cancel := context.WithTimeout(context.Background(), max(w.every, time.Second))
	defer cancel()
	now := time.Now().UnixMilli()
	// Read only, so go-redis's retries are harmless.
	zs, err := s.client.ZRangeByScoreWithScores(ctx, s.revocationsKey(), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now, 10), Max: "+inf"}).Result()
	if err != nil {
		return storeErr("read revocations", err)
	}
	var next [revokedShards]revokedSet // nil for an empty shard
	add := func(u revocationUpdate) {
		i := u.tag.shard()
		if next[i] == nil {
			next[i] = revokedSet{}
		}
		next[i].apply(u)
	}
	for _, z := range zs {
		m, _ := z.Member.(string)
		if t, ok := parseTag(m); ok {
			add(revocationUpdate{tag: t, until: int64(z.Score)})
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, u := range w.since {
		add(u)
	}
	var count int64
	for i := range next {
		w.shards[i].Store(&next[i])
		count += int64(len(next[i]))
	}
	w.count.Store(count)
	w.known.Store(true)
	return nil
}

var _ policy.RevocationView = (*Store)(nil)
