package revocation

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"
)

// ChannelMetrics receives the fleet channel's measurements.
type ChannelMetrics interface {
	// ChannelState says whether the broker is reachable now.
	ChannelState(up bool)
	// ChannelLag records how long after it was made another replica's
	// revocation was applied here.
	ChannelLag(d time.Duration)
	// Published counts one publish attempt: "ok", "retry" (failed, will
	// be retried) or "dropped" (given up after the retry bound, or the
	// queue was full).
	Published(result string)
}

// RedisOptions configure a [Redis] channel. Zero fields take the
// documented defaults.
type RedisOptions struct {
	// URL is the broker, redis://[user:password@]host:port[/db] or
	// rediss:// for TLS; required.
	URL string
	// Stream is the Redis Stream's key (default "portcullis:revocations").
	Stream string
	// MaxLen caps the stream, approximately (default 10000 events): a
	// replica that was away for more events than that misses the oldest.
	MaxLen int64
	// CatchUp is how far back a starting replica reads, so that it learns
	// the tombstones of recent revocations (default 24h, as
	// Options.TombstoneTTL).
	CatchUp time.Duration
	// RetryFor bounds how long a publish that fails is retried before the
	// event is dropped from the queue (default 5m); the revocation took
	// effect on this replica either way.
	RetryFor time.Duration
	// QueueSize bounds the events waiting to be published (default 4096);
	// beyond it new events are dropped, counted and logged.
	QueueSize int
	// Log receives the channel's state changes; nil discards. The URL's
	// password is never logged.
	Log logrus.FieldLogger
	// Metrics counts; nil counts nothing.
	Metrics ChannelMetrics
}

// Redis is a [Channel] on a Redis Stream: every replica appends its
// revocations (XADD, trimmed to MaxLen) and reads everyone's (XREAD from the
// last id it saw), so a replica that lost the broker for a while reads what
// it missed when it is back — unlike pub/sub, which drops messages for
// absent subscribers. Publishing goes through a bounded queue served by one
// goroutine: the request path never waits for Redis.
type Redis struct {
	o      RedisOptions
	client *redis.Client
	log    logrus.FieldLogger
	queue  chan Event
	up     atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
}

// Defaults of [RedisOptions].
const (
	DefaultRedisStream   = "portcullis:revocations"
	DefaultRedisMaxLen   = 10000
	DefaultRedisRetryFor = 5 * time.Minute
	DefaultRedisQueue    = 4096
)

// NewRedis returns a channel on the broker at o.URL and starts its
// publisher. It does not wait for the broker: one that is down at start is
// retried like one that goes down later. Close stops it.
func NewRedis(o RedisOptions) (*Redis, error) {
	if o.URL == "" {
		return nil, errors.New("url: required")
	}
	opt, err := redis.ParseURL(o.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %s", redactURLError(o.URL, err))
	}
	o.Stream = cmp.Or(o.Stream, DefaultRedisStream)
	o.MaxLen = positive(o.MaxLen, DefaultRedisMaxLen)
	o.CatchUp = positive(o.CatchUp, DefaultTombstoneTTL)
	o.RetryFor = positive(o.RetryFor, DefaultRedisRetryFor)
	o.QueueSize = positive(o.QueueSize, DefaultRedisQueue)
	// Short timeouts: a broker that hangs must be found out quickly, and
	// no request waits on it anyway.
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	opt.MaxRetries, opt.DialerRetries = 0, 1
	r := &Redis{o: o, client: redis.NewClient(opt), log: o.Log, queue: make(chan Event, o.QueueSize), stop: make(chan struct{})}
	if r.log == nil {
		l := logrus.New()
		l.Out = io.Discard
		r.log = l
	}
	r.up.Store(true) // until a call says otherwise
	r.wg.Add(1)
	go r.publishLoop()
	return r, nil
}

// userinfo matches the credentials part of a URL.
var userinfo = regexp.MustCompile(`//[^@/?#]*@`)

// redactURLError is err's message without the URL's credentials.
func redactURLError(raw string, err error) string {
	msg := err.Error()
	if m := userinfo.FindString(raw); m != "" {
		msg = strings.ReplaceAll(msg, m, "//xxxxx@")
		if u, perr := url.Parse(raw); perr == nil && u.User != nil {
			if p, ok := u.User.Password(); ok && p != "" {
				msg = strings.ReplaceAll(msg, p, "xxxxx")
			}
		}
	}
	return msg
}

// Up reports whether the last exchange with the broker succeeded.
func (r *Redis) Up() bool { return r.up.Load() }

// setUp records the broker's state, logging and counting changes.
func (r *Redis) setUp(up bool, err error) {
	if r.up.Swap(up) == up {
		return
	}
	if r.o.Metrics != nil {
		r.o.Metrics.ChannelState(up)
	}
	if up {
		r.log.WithField("stream", r.o.Stream).Info("revocation channel: broker reachable again")
		return
	}
	r.log.WithField("stream", r.o.Stream).WithField("error", err.Error()).
		Warn("revocation channel: broker unreachable; revocations apply on this replica and are queued for the others")
}

// Publish implements [Channel]: e is queued, never waited for.
func (r *Redis) Publish(e Event) {
	select {
	case r.queue <- e:
	default:
		r.count("dropped")
		r.log.WithField("source", e.Source).Error("revocation channel: publish queue full; event not sent to the other replicas")
	}
}

func (r *Redis) count(result string) {
	if r.o.Metrics != nil {
		r.o.Metrics.Published(result)
	}
}

// publishLoop sends queued events in order, retrying each with a backoff
// until it is RetryFor old.
func (r *Redis) publishLoop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.stop:
			return
		case e := <-r.queue:
			r.publish(e)
		}
	}
}

func (r *Redis) publish(e Event) {
	data, err := json.Marshal(e)
	if err != nil {
		r.count("dropped")
		return
	}
	var wait backoff
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := r.client.XAdd(ctx, &redis.XAddArgs{
			Stream: r.o.Stream, MaxLen: r.o.MaxLen, Approx: true,
			Values: map[string]any{"event": data},
		}).Err()
		cancel()
		if err == nil {
			r.setUp(true, nil)
			r.count("ok")
			return
		}
		r.setUp(false, err)
		if time.Since(e.At) > r.o.RetryFor {
			r.count("dropped")
			r.log.WithField("source", e.Source).WithField("error", err.Error()).
				Error("revocation channel: event not sent to the other replicas within the retry bound")
			return
		}
		r.count("retry")
		if !wait.sleep(r.stop) {
			return
		}
	}
}

// Run implements [Channel]: it reads the stream from CatchUp ago, then
// follows it, delivering every event; after an error it reconnects with a
// backoff and goes on from the last id it read.
func (r *Redis) Run(ctx context.Context, deliver func(Event)) {
	last := strconv.FormatInt(time.Now().Add(-r.o.CatchUp).UnixMilli(), 10) + "-0"
	var wait backoff
	for ctx.Err() == nil {
		res, err := r.client.XRead(ctx, &redis.XReadArgs{
			Streams: []string{r.o.Stream, last}, Count: 512, Block: time.Second,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil):
			r.setUp(true, nil)
			wait.reset()
			continue
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			r.setUp(false, err)
			if !wait.sleep(ctx.Done()) {
				return
			}
			continue
		}
		r.setUp(true, nil)
		wait.reset()
		for _, st := range res {
			for _, m := range st.Messages {
				last = m.ID
				raw, _ := m.Values["event"].(string)
				var e Event
				if err := json.Unmarshal([]byte(raw), &e); err != nil {
					r.log.WithField("id", m.ID).Warn("revocation channel: unreadable event skipped")
					continue
				}
				if r.o.Metrics != nil && !e.At.IsZero() {
					r.o.Metrics.ChannelLag(time.Since(e.At))
				}
				deliver(e)
			}
		}
	}
}

// Close stops the publisher (events still queued are not sent) and closes
// the connection pool.
func (r *Redis) Close() error {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
	return r.client.Close()
}
