// Package revocation turns a revocation, wherever it was learnt — the admin
// API, a logout seen in the path, an OpenID Connect back-channel logout, a
// re-check that found a session rejected — into its effects on this
// replica (matching live channels close, session caches drop the session, a
// tombstone refuses the session's next upgrade) and, through a fleet
// [Channel], on every other replica.
package revocation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// Sources of revocations, as events and metrics name them.
const (
	SourceAdmin       = "admin"
	SourceLogout      = "logout"
	SourceBackchannel = "backchannel_logout"
	SourceRecheck     = "recheck"
)

// Event is one revocation. At least one of SessionID, Subject and Rule is
// set; every channel matching all the set ones is closed.
type Event struct {
	SessionID string `json:"session_id,omitempty"`
	Subject   string `json:"subject,omitempty"`
	Rule      string `json:"rule,omitempty"`
	// Reason is the Close frame's reason ("session revoked" when empty).
	Reason string `json:"reason,omitempty"`
	// Source is one of the Source constants.
	Source string `json:"source"`
	// At is when the revocation was made.
	At time.Time `json:"at"`
	// Until is how long a session or subject revocation is remembered
	// (the session's expiry when known); zero: Options.TombstoneTTL.
	Until time.Time `json:"until,omitzero"`
	// Replica names the replica that made the revocation.
	Replica string `json:"replica"`
}

// empty reports whether e names nothing to revoke.
func (e Event) empty() bool { return e.SessionID == "" && e.Subject == "" && e.Rule == "" }

// Closer closes the live channels of this replica that match a revocation
// and returns how many it told to close. The tunnels' registry implements
// it through a small adapter.
type Closer interface {
	CloseMatching(sessionID, subject, rule, reason string) int
}

// Evicter drops what a session cache holds for a session id or a subject.
type Evicter interface {
	EvictSession(sessionID, subject string)
}

// Channel carries revocations between replicas.
type Channel interface {
	// Publish hands e to the channel without waiting for the broker: a
	// broker that is down must never hold up the caller.
	Publish(e Event)
	// Run delivers the other replicas' events to deliver until ctx ends,
	// catching up on what was missed after a broker outage.
	Run(ctx context.Context, deliver func(Event))
}

// Metrics receives the service's measurements.
type Metrics interface {
	// Revocation counts one revocation applied here, by source, and the
	// live channels it closed.
	Revocation(source string, closed int)
}

// Options configure a [Service]. Zero fields take the documented defaults.
type Options struct {
	// Closer closes matching live channels; required.
	Closer Closer
	// Evicter drops cached sessions; nil: none.
	Evicter Evicter
	// Channel is the fleet channel; nil: a single replica.
	Channel Channel
	// Log receives one line per revocation; nil discards.
	Log logrus.FieldLogger
	// Metrics counts revocations; nil counts nothing.
	Metrics Metrics
	// TombstoneTTL is the longest a revoked session or subject is refused
	// (default 24h, Kratos's default session lifespan); a revocation that
	// knows the session's expiry keeps its tombstone only until then.
	TombstoneTTL time.Duration
	// MaxTombstones bounds the remembered revocations (default 100000);
	// when full, those ending soonest are forgotten first.
	MaxTombstones int
	// Replica names this replica in published events (default random).
	Replica string
}

// Defaults of [Options].
const (
	DefaultTombstoneTTL  = 24 * time.Hour
	DefaultMaxTombstones = 100000
)

// Service applies and spreads revocations. Safe for concurrent use.
type Service struct {
	o   Options
	log logrus.FieldLogger

	mu         sync.RWMutex
	tombstones map[tombstone]time.Time // → until
}

// tombstone names what a revocation refuses: a session (bySubject false)
// or a subject. A struct rather than a prefixed string, so that Revoked,
// which runs on every decision with a session, looks up without building
// a key.
type tombstone struct {
	bySubject bool
	id        string
}

// positive returns v, or def when v is zero or negative.
func positive[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// New returns a service configured by o.
func New(o Options) *Service {
	o.TombstoneTTL = positive(o.TombstoneTTL, DefaultTombstoneTTL)
	o.MaxTombstones = positive(o.MaxTombstones, DefaultMaxTombstones)
	if o.Replica == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		o.Replica = hex.EncodeToString(b[:])
	}
	s := &Service{o: o, log: o.Log, tombstones: map[tombstone]time.Time{}}
	if s.log == nil {
		l := logrus.New()
		l.Out = io.Discard
		s.log = l
	}
	return s
}

// Replica returns the name this replica publishes under.
func (s *Service) Replica() string { return s.o.Replica }

// Run consumes the fleet channel until ctx ends; without a channel it
// returns at once.
func (s *Service) Run(ctx context.Context) {
	if s.o.Channel == nil {
		return
	}
	s.o.Channel.Run(ctx, func(e Event) {
		if e.Replica == s.o.Replica || e.empty() {
			return
		}
		s.apply(e)
	})
}

// Revoke applies e on this replica and publishes it to the others. It
// returns how many live channels of this replica were told to close. At,
// Replica and Source are filled in when empty.
func (s *Service) Revoke(e Event) int {
	if e.empty() {
		return 0
	}
	if e.At.IsZero() {
		e.At = time.Now()
	}
	if e.Replica == "" {
		e.Replica = s.o.Replica
	}
	if e.Source == "" {
		e.Source = SourceAdmin
	}
	n := s.apply(e)
	if s.o.Channel != nil {
		s.o.Channel.Publish(e)
	}
	return n
}

// Rejected implements the tunnels' report of a session rejected at a
// re-check: a revocation by session id (or, without one, nothing to spread).
func (s *Service) Rejected(sessionID, subject, rule string) {
	if sessionID == "" {
		return
	}
	s.Revoke(Event{SessionID: sessionID, Source: SourceRecheck})
}

// Revoked reports whether the session or the subject is remembered as
// revoked.
func (s *Service) Revoked(sessionID, subject string) bool {
	if sessionID == "" && subject == "" {
		return false
	}
	now := time.Now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if sessionID != "" {
		if until, ok := s.tombstones[tombstone{id: sessionID}]; ok && now.Before(until) {
			return true
		}
	}
	if subject != "" {
		if until, ok := s.tombstones[tombstone{bySubject: true, id: subject}]; ok && now.Before(until) {
			return true
		}
	}
	return false
}

// apply does what e means on this replica: a tombstone for a session or a
// subject, cached sessions dropped, matching live channels closed.
func (s *Service) apply(e Event) int {
	until := s.untilOf(e)
	if e.Rule == "" && time.Now().Before(until) {
		// A rule revocation closes what is open; it refuses nothing new.
		s.remember(e, until)
	}
	if s.o.Evicter != nil && (e.SessionID != "" || e.Subject != "") {
		s.o.Evicter.EvictSession(e.SessionID, e.Subject)
	}
	n := s.o.Closer.CloseMatching(e.SessionID, e.Subject, e.Rule, e.Reason)
	if s.o.Metrics != nil {
		s.o.Metrics.Revocation(e.Source, n)
	}
	f := logrus.Fields{"source": e.Source, "closed": n, "replica": e.Replica}
	for k, v := range map[string]string{"session_id": e.SessionID, "subject": e.Subject, "rule": e.Rule} {
		if v != "" {
			f[k] = v
		}
	}
	s.log.WithFields(f).Info("revocation applied")
	return n
}

// untilOf is how long e's tombstone lasts: its Until, at most TombstoneTTL
// from when it was made.
func (s *Service) untilOf(e Event) time.Time {
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	limit := at.Add(s.o.TombstoneTTL)
	if e.Until.IsZero() || e.Until.After(limit) {
		return limit
	}
	return e.Until
}

// remember stores the tombstones of e until until, within MaxTombstones.
func (s *Service) remember(e Event, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	put := func(k tombstone) {
		if old, ok := s.tombstones[k]; ok && old.After(until) {
			return
		}
		if _, ok := s.tombstones[k]; !ok && len(s.tombstones) >= s.o.MaxTombstones {
			s.makeRoomLocked()
		}
		s.tombstones[k] = until
	}
	if e.SessionID != "" {
		put(tombstone{id: e.SessionID})
	}
	if e.Subject != "" {
		put(tombstone{bySubject: true, id: e.Subject})
	}
}

// makeRoomLocked forgets the expired tombstones, or, when none has
// expired, the one that ends soonest; s.mu is held.
func (s *Service) makeRoomLocked() {
	now := time.Now()
	var soonest tombstone
	var soonestAt time.Time
	found := false
	for k, until := range s.tombstones {
		if !now.Before(until) {
			delete(s.tombstones, k)
			continue
		}
		if !found || until.Before(soonestAt) {
			soonest, soonestAt, found = k, until, true
		}
	}
	if len(s.tombstones) >= s.o.MaxTombstones && found {
		delete(s.tombstones, soonest)
	}
}

// Tombstones returns the number of remembered revocations.
func (s *Service) Tombstones() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.tombstones)
}
