// Package redislog is the scale-out gymbro.EventLog: every message's log is
// one Redis Stream, so an SSE subscriber may land on any instance and still
// replay and follow a reply that another instance is generating.
//
// Layout, per message id <id> and key prefix <p>:
//
//	<p>msg:{<id>}:events   the stream; entry id 0-<seq>, one field "e" holding
//	                       the event's JSON (the same bytes an SSE data line carries)
//	<p>msg:{<id>}:closed   present once a terminal event was appended
//	<p>events              pub/sub channel; every append publishes <id>
//
// The entry id is 0-<seq>, so Last-Event-ID: n maps straight onto
// XRANGE key (0-n + COUNT max. The braces are a Redis Cluster hash tag: both
// keys of a message live in one slot, which the append script needs.
//
// Followers cost no Redis connection each: one subscriber goroutine per
// EventLog receives every append's message id and wakes the local watchers
// of that id. When that subscription reconnects, notifications may have
// been lost, so every local watcher is woken once and re-reads. An append
// wakes the watchers on its own instance at once, without waiting for the
// notification's round trip, and a log this instance began is read from a
// copy of its first events in memory while no other instance writes to it
// (see tails).
package redislog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gymbro/gymbro-api/internal/backoff"
	"github.com/gymbro/gymbro-api/internal/eventlog"
	"github.com/gymbro/gymbro-api/internal/gymbro"
	"github.com/gymbro/gymbro-api/internal/outage"
)

// CodeLogClosed is the code of the KindConflict error Append returns once a
// message's log has ended with a terminal event.
const CodeLogClosed = gymbro.CodeLogClosed

// Defaults for Options fields left zero.
const (
	DefaultPrefix   = "gymbro:"
	DefaultTTL      = eventlog.DefaultTTL
	DefaultOpenTTL  = eventlog.DefaultOpenTTL
	DefaultBlockFor = 30 * time.Second
)

// Options configures an EventLog. The zero value is usable.
type Options struct {
	// Prefix starts every key and the channel name, so several deployments
	// (or parallel tests) can share one Redis. Default DefaultPrefix.
	Prefix string

	// TTL is how long a log stays readable after its terminal event.
	// Default DefaultTTL.
	TTL time.Duration

	// OpenTTL is renewed on every append while a log is open, so a stream
	// whose generation died without a terminal event does not stay in
	// Redis forever. Default DefaultOpenTTL.
	OpenTTL time.Duration

	// Now stamps events' At. Default time.Now.
	Now func() time.Time

	// BlockFor is how long the subscriber waits for a notification before
	// it pings Redis to prove the subscription is alive; a silent dead
	// connection is noticed within about twice this. Default DefaultBlockFor.
	BlockFor time.Duration

	// ReplicaWait bounds how long Sync waits for the replicas to
	// acknowledge a log. Default DefaultReplicaWait.
	ReplicaWait time.Duration

	// Logger receives subscription failures. Default slog.Default().
	Logger *slog.Logger
}

// EventLog is a gymbro.EventLog on Redis Streams. Create it with New; Close
// stops its subscriber goroutine but leaves the client to its owner.
type EventLog struct {
	client   redis.UniversalClient
	prefix   string
	channel  string
	ttl      time.Duration
	openTTL  time.Duration
	now      func() time.Time
	blockFor time.Duration
	log      *slog.Logger

	replicaWait time.Duration
	replicas    atomic.Int64 // in sync with the master, as the last Sync saw them; -1 before it

	watchers  registry
	listeners eventlog.Listeners
	tails     tails

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	mu     sync.Mutex // guards ps and closed
	ps     *redis.PubSub
	closed bool
	done   chan struct{}
}

var (
	_ gymbro.EventLog       = (*EventLog)(nil)
	_ gymbro.AppendNotifier = (*EventLog)(nil)
)

// OnAppend implements gymbro.AppendNotifier: fn hears of appends from every
// instance, through the one subscription this EventLog already holds.
func (l *EventLog) OnAppend(fn func(messageID string)) (stop func()) { return l.listeners.Add(fn) }

// appendScript makes Append atomic across instances: the next seq is read,
// the closed mark checked and the entry written in one step, so two
// instances can never hand out one seq twice or write after a terminal
// event. Publishing from inside the script means no notification is sent
// for an entry that was not written, nor missed for one that was. In a
// Redis Cluster both keys share the message's slot (the {id} hash tag),
// and the PUBLISH reaches every node's subscribers over the cluster bus.
//
// KEYS[1] stream, KEYS[2] closed mark.
// ARGV[1], ARGV[2] the event's JSON before and after its seq value;
// ARGV[3] "1" when terminal; ARGV[4] TTL ms; ARGV[5] open TTL ms;
// ARGV[6] channel; ARGV[7] message id; ARGV[8] the seq the writer expects
// the event to get, or "0" for the next one.
// Returns {seq, last, written}: the event's seq, the log's last seq, and 1
// when this call wrote it. seq is -1 when the log is closed, 0 when the log
// holds fewer events than the expected seq needs (nothing written); an
// expected seq the log already holds was written by an earlier call and is
// not written again.
var appendScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {-1, 0, 0}
end
local last = 0
local tail = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #tail > 0 then
  last = tonumber(string.match(tail[1][1], '^0%-(%d+)$'))
end
local seq = tonumber(ARGV[8])
if seq == 0 then
  seq = last + 1
elseif seq <= last then
  return {seq, last, 0}
elseif seq > last + 1 then
  return {0, last, 0}
end
local s = string.format('%d', seq)
redis.call('XADD', KEYS[1], '0-' .. s, 'e', ARGV[1] .. s .. ARGV[2])
if ARGV[3] == '1' then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {seq, seq, 1}
`)

// New returns an EventLog on client and starts its one subscriber
// goroutine. It does no I/O of its own: the subscription connects in the
// background, and Ping is the readiness check.
func New(client redis.UniversalClient, opts Options) (*EventLog, error) {
	if client == nil {
		return nil, errors.New("redislog: nil client")
	}
	l := &EventLog{
		client:   client,
		prefix:   opts.Prefix,
		blockFor: opts.BlockFor,
		log:      opts.Logger,
		done:     make(chan struct{}),
	}
	if l.prefix == "" {
		l.prefix = DefaultPrefix
	}
	if strings.ContainsAny(l.prefix, "{}") {
		return nil, errors.New("redislog: Prefix must not contain braces (they form the Redis Cluster hash tag)")
	}
	l.ttl, l.openTTL, l.now = eventlog.Retention(opts.TTL, opts.OpenTTL, opts.Now)
	if l.blockFor <= 0 {
		l.blockFor = DefaultBlockFor
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	l.replicaWait = opts.ReplicaWait
	if l.replicaWait <= 0 {
		l.replicaWait = DefaultReplicaWait
	}
	l.replicas.Store(-1)
	l.channel = l.prefix + "events"
	l.watchers.init()
	l.tails.init(l.ttl, l.openTTL)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	go l.subscribe()
	return l, nil
}

func (l *EventLog) streamKey(id string) string { return l.prefix + "msg:{" + id + "}:events" }
func (l *EventLog) closedKey(id string) string { return l.prefix + "msg:{" + id + "}:closed" }

// seqMarker is where Event's JSON carries the seq; message_id, the field
// before it, is an escaped JSON string and so cannot contain it.
const seqMarker = `"seq":0`

// Append implements gymbro.EventLog in one script round trip. The watchers
// and listeners on this instance are woken as soon as it returns, not when
// the append's notification comes back through the subscription (which
// wakes them again, as it wakes those of every other instance).
func (l *EventLog) Append(ctx context.Context, ev gymbro.Event) (gymbro.Event, error) {
	seq, _, err := l.append(ctx, &ev, 0)
	if err != nil {
		return gymbro.Event{}, err
	}
	ev.Seq = seq
	return ev, nil
}

// AppendAt appends ev as event seq of its message, provided the log holds
// exactly seq-1 events, in the one round trip of Append. It returns the
// seq of the log's last event: seq or more when ev is in the log (written
// now, or by an earlier call whose reply was lost, so a retry never writes
// an event twice), less when the log holds fewer than seq-1 events, and
// then nothing was written. Redis replicates asynchronously: after a
// failover the new master may lack the last events a writer appended, and
// the writer, which knows them, writes them again from last+1. A closed
// log fails as Append does.
func (l *EventLog) AppendAt(ctx context.Context, ev gymbro.Event, seq int64) (last int64, err error) {
	if seq < 1 {
		return 0, gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeValidation, "seq must be positive.")
	}
	_, last, err = l.append(ctx, &ev, seq)
	return last, err
}

// append runs appendScript for ev, stamping its At, at seq (0: the next
// one). It returns the seq ev has in the log (0 when it was not written)
// and the log's last seq.
func (l *EventLog) append(ctx context.Context, ev *gymbro.Event, seq int64) (written, last int64, err error) {
	if err := ev.Validate(); err != nil {
		return 0, 0, err
	}
	ev.Seq = 0
	ev.At = l.now().UTC().Round(0)
	data, err := json.Marshal(ev)
	if err != nil {
		return 0, 0, gymbro.Wrap(err, gymbro.KindInternal, gymbro.CodeInternal, "The event could not be encoded.")
	}
	before, after, ok := strings.Cut(string(data), seqMarker)
	if !ok {
		return 0, 0, gymbro.Errorf(gymbro.KindInternal, gymbro.CodeInternal, "The event could not be encoded.")
	}
	terminal := "0"
	if ev.Type.Terminal() {
		terminal = "1"
	}
	l.tails.begin(ev, seq)
	res, err := appendScript.Run(ctx, l.client,
		[]string{l.streamKey(ev.MessageID), l.closedKey(ev.MessageID)},
		before+`"seq":`, after, terminal, l.ttl.Milliseconds(), l.openTTL.Milliseconds(),
		l.channel, ev.MessageID, seq,
	).Int64Slice()
	if err != nil {
		if l.tails.appended(ev.MessageID, *ev, 0, false) {
			l.wake(ev.MessageID)
		}
		return 0, 0, unavailable(err)
	}
	if len(res) != 3 {
		if l.tails.appended(ev.MessageID, *ev, -1, false) {
			l.wake(ev.MessageID)
		}
		return 0, 0, corrupt(fmt.Errorf("append script replied %v", res))
	}
	wrote := res[2] == 1
	if l.tails.appended(ev.MessageID, *ev, res[0], wrote) || wrote {
		l.wake(ev.MessageID)
	}
	if res[0] < 0 {
		return 0, 0, gymbro.Errorf(gymbro.KindConflict, CodeLogClosed, "The message's event log has already ended.")
	}
	return res[0], res[1], nil
}

// wake wakes this instance's watchers and listeners of id.
func (l *EventLog) wake(id string) {
	l.watchers.signal(id)
	l.listeners.Notify(id)
}

// Read implements gymbro.EventLog with one XRANGE, or from memory when
// this instance wrote the whole log so far (see tails).
func (l *EventLog) Read(ctx context.Context, messageID string, after int64, max int) ([]gymbro.Event, error) {
	if max <= 0 {
		return nil, gymbro.Errorf(gymbro.KindInvalid, gymbro.CodeValidation, "max must be positive.")
	}
	if evs, ok := l.tails.read(messageID, after, max); ok {
		return evs, nil
	}
	start := "-"
	if after > 0 {
		start = "(0-" + strconv.FormatInt(after, 10)
	}
	msgs, err := l.client.XRangeN(ctx, l.streamKey(messageID), start, "+", int64(max)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	evs := make([]gymbro.Event, len(msgs))
	for i, m := range msgs {
		seq, err := seqOf(m.ID)
		if err != nil {
			return nil, corrupt(err)
		}
		raw, ok := m.Values["e"].(string)
		if !ok {
			return nil, corrupt(fmt.Errorf("entry %s has no event field", m.ID))
		}
		if err := json.Unmarshal([]byte(raw), &evs[i]); err != nil {
			return nil, corrupt(fmt.Errorf("entry %s: %w", m.ID, err))
		}
		evs[i].Seq = seq // the entry id is authoritative
	}
	return evs, nil
}

// Watch implements gymbro.EventLog. It touches no Redis: the shared
// subscriber wakes the channel. The channel is never closed; calling stop
// twice is harmless.
func (l *EventLog) Watch(messageID string) (<-chan struct{}, func()) {
	return l.watchers.add(messageID)
}

// Ping implements gymbro.EventLog with CheckMode: Redis answers, and is
// the kind the client was made for, so readiness never says ok while the
// other commands fail with MOVED.
func (l *EventLog) Ping(ctx context.Context) error {
	err := CheckMode(ctx, l.client)
	if me, ok := errors.AsType[*ModeError](err); ok {
		return gymbro.Wrap(me, gymbro.KindUnavailable, gymbro.CodeUnavailable,
			"The event log's Redis is reached in the wrong mode (see GYMBRO_REDIS_MODE).")
	}
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// Close stops the subscriber goroutine and waits for it. It does not close
// the client, which the caller owns. Close may be called more than once.
func (l *EventLog) Close() error {
	l.cancel() // first: aborts a dial in progress
	l.mu.Lock()
	ps := l.ps
	already := l.closed
	l.closed = true
	l.mu.Unlock()
	if !already && ps != nil {
		_ = ps.Close() // unblocks a pending receive
	}
	<-l.done
	return nil
}

// subscribe is the one goroutine that turns notifications into wake-ups.
func (l *EventLog) subscribe() {
	defer close(l.done)
	var (
		pinged   bool // a PING is out and no reply has come yet
		failures int
	)
	ps := l.connect()
	if ps == nil {
		return
	}
	for {
		msg, err := ps.ReceiveTimeout(l.ctx, l.blockFor)
		if l.ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				// Quiet is normal; make sure it is not a dead connection.
				pinged = true
				if perr := ps.Ping(l.ctx); perr == nil {
					continue
				}
			}
			// The subscription is broken (or silent after a ping): start a
			// fresh one. Notifications may have been lost meanwhile; every
			// watcher is woken once it is confirmed.
			failures++
			pinged = false
			l.tails.lost()
			l.log.Warn("redislog: event subscription lost; reconnecting",
				slog.String("channel", l.channel), slog.Any("error", err), slog.Int("attempt", failures))
			if ps = l.resubscribe(failures); ps == nil {
				return
			}
			continue
		}
		pinged = false
		switch m := msg.(type) {
		case *redis.Message:
			failures = 0
			l.tails.heard(m.Payload)
			l.watchers.signal(m.Payload)
			l.listeners.Notify(m.Payload)
		case *redis.Subscription:
			failures = 0
			if m.Kind == "subscribe" {
				// Also the first confirmation: a watcher registered before
				// the subscription was live may have missed an append.
				l.tails.subscribed()
				l.watchers.signalAll()
				l.listeners.Notify("")
			}
		case *redis.Pong:
		}
	}
}

var resubscribeBackoff = backoff.Policy{Base: 50 * time.Millisecond, Max: 5 * time.Second}

// resubscribe waits a backoff, then replaces the PubSub. It returns nil
// when the log was closed meanwhile. In a Redis Cluster the node that held
// the subscription may have failed over: the client reloads the slot map
// during the backoff, so the new subscription goes to the channel's
// current master rather than waiting for the periodic reload.
func (l *EventLog) resubscribe(failures int) *redis.PubSub {
	if cc, ok := l.client.(*redis.ClusterClient); ok {
		cc.ReloadState(l.ctx)
	}
	if backoff.Sleep(l.ctx, resubscribeBackoff.Delay(failures)) != nil {
		return nil
	}
	return l.connect()
}

// connect replaces the PubSub with a fresh one subscribed to the channel,
// or returns nil when the log is closed. The PubSub is published before
// its first I/O so that Close can always interrupt it. A failed SUBSCRIBE
// is not an error here: go-redis remembers the channel and subscribes
// again when the next receive reconnects.
func (l *EventLog) connect() *redis.PubSub {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	if l.ps != nil {
		_ = l.ps.Close()
	}
	ps := l.client.Subscribe(l.ctx) // no channels: no I/O yet
	l.ps = ps
	l.mu.Unlock()
	_ = ps.Subscribe(l.ctx, l.channel)
	return ps
}

func seqOf(id string) (int64, error) {
	s, ok := strings.CutPrefix(id, "0-")
	if !ok {
		return 0, fmt.Errorf("entry id %q is not 0-<seq>", id)
	}
	return strconv.ParseInt(s, 10, 64)
}

// unavailable classifies a failed Redis call: an error reply that is not an
// outage (see outage.Is) is a bug; everything else, a connection that
// failed or a server that cannot serve now, is an outage (503). So is a
// reply that the key lives elsewhere (MOVED, ASK, CROSSSLOT): Redis is
// reached in the wrong mode, which readiness reports; and NOREPLICAS, a
// master that min-replicas-to-write keeps from writing while its replicas
// are away.
func unavailable(err error) error {
	var reply redis.Error
	if errors.As(err, &reply) && !outage.Is(err) && !misrouted(err) && !redis.HasErrorPrefix(err, "NOREPLICAS") {
		return gymbro.Wrap(err, gymbro.KindInternal, gymbro.CodeInternal, "The event log failed.")
	}
	return outage.Wrap(err, "The event log")
}

func misrouted(err error) bool {
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return moved || ask || redis.HasErrorPrefix(err, "CROSSSLOT")
}

func corrupt(err error) error {
	return gymbro.Wrap(err, gymbro.KindInternal, gymbro.CodeInternal, "The event log holds an unreadable event.")
}

// registry holds the local watchers, sharded so appends to different
// messages do not contend.
type registry struct {
	seed   maphash.Seed
	shards [64]watchShard
}

type watchShard struct {
	mu sync.Mutex
	m  map[string]map[*watcher]struct{}
	_  [48]byte // keep neighbouring shard locks off one cache line
}

type watcher struct{ ch chan struct{} }

func (r *registry) init() {
	r.seed = maphash.MakeSeed()
	for i := range r.shards {
		r.shards[i].m = make(map[string]map[*watcher]struct{})
	}
}

func (r *registry) shard(id string) *watchShard {
	return &r.shards[maphash.String(r.seed, id)&(uint64(len(r.shards))-1)]
}

func (r *registry) add(id string) (<-chan struct{}, func()) {
	w := &watcher{ch: make(chan struct{}, 1)}
	s := r.shard(id)
	s.mu.Lock()
	set := s.m[id]
	if set == nil {
		set = make(map[*watcher]struct{}, 1)
		s.m[id] = set
	}
	set[w] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return w.ch, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			delete(set, w)
			if len(set) == 0 && s.m[id] != nil && len(s.m[id]) == 0 {
				delete(s.m, id)
			}
		})
	}
}

func (r *registry) signal(id string) {
	s := r.shard(id)
	s.mu.Lock()
	for w := range s.m[id] {
		notify(w)
	}
	s.mu.Unlock()
}

func (r *registry) signalAll() {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for _, set := range s.m {
			for w := range set {
				notify(w)
			}
		}
		s.mu.Unlock()
	}
}

func notify(w *watcher) {
	select {
	case w.ch <- struct{}{}:
	default: // a wake-up is already pending
	}
}
