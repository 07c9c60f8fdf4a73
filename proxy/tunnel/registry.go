package tunnel

import (
	"slices"
	"strconv"
	"sync"
	"time"
)

// LiveChannel is a long-lived connection bound to the identity that opened
// it — a WebSocket tunnel, or a session-bound stream — that the [Registry]
// can close. Implementations must be safe for concurrent use.
type LiveChannel interface {
	// Describe returns what the channel is bound to and its state now
	// (ID is the registry's to fill in).
	Describe() ChannelInfo
	// Revoke ends the channel on the proxy's initiative because its
	// session was revoked: for a WebSocket, a Close 1008 with reason to the
	// client first, then to the upstream. It returns without waiting for
	// the closing handshake and does nothing on a channel already ending.
	Revoke(reason string)
}

// ChannelKeys are what a live channel is indexed by. Empty keys are not
// indexed (an anonymous tunnel has no session id).
type ChannelKeys struct {
	// SessionID is the identity provider's id of the session: Kratos's
	// session id, a JWT's sid (else jti), an introspection answer's sid.
	SessionID string
	// Subject is the session's subject.
	Subject string
	// Rule is the id of the rule that admitted the channel.
	Rule string
	// Credential is a hash of the credential that admitted the channel
	// (never the credential itself).
	Credential string
}

// ChannelInfo describes one live channel, as the admin API lists it.
type ChannelInfo struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	Rule      string    `json:"rule"`
	Subject   string    `json:"subject"`
	SessionID string    `json:"session_id,omitempty"`
	OpenedAt  time.Time `json:"opened_at"`
	// NextDeadline is the earliest of the channel's deadlines and
	// NextDeadlineReason names it ("max_lifetime", "session_expired",
	// "idle_timeout", "revalidation"); absent when none is set.
	NextDeadline       *time.Time `json:"next_deadline,omitempty"`
	NextDeadlineReason string     `json:"next_deadline_reason,omitempty"`
	// SessionExpiresAt is when the session ends, when known.
	SessionExpiresAt *time.Time `json:"session_expires_at,omitempty"`
	// Bytes relayed each way, frame headers included, as of the last
	// report (at most about a second old on a busy channel).
	BytesToUpstream int64  `json:"bytes_to_upstream"`
	BytesToClient   int64  `json:"bytes_to_client"`
	ClientAddress   string `json:"client_address"`
	Origin          string `json:"origin,omitempty"`
}

// Selector picks live channels: every non-empty field must match; the zero
// Selector matches every channel.
type Selector struct {
	SessionID, Subject, Rule, Credential string
}

// IsZero reports whether s names nothing.
func (s Selector) IsZero() bool { return s == Selector{} }

// Registry indexes the live channels of a process by session id, subject,
// rule and credential hash, so that a revocation finds every channel of a
// session, a subject or a rule at once. Every channel is added when it is
// established and removed when it has ended, whichever way it ended. Safe
// for concurrent use.
type Registry struct {
	mu    sync.Mutex
	next  uint64
	byID  map[uint64]*registered
	index [4]map[string]map[uint64]*registered // by keyIndex
}

// Indexes of Registry.index.
const (
	bySession = iota
	bySubject
	byRule
	byCredential
)

type registered struct {
	ch   LiveChannel
	keys ChannelKeys
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{byID: map[uint64]*registered{}}
	for i := range r.index {
		r.index[i] = map[string]map[uint64]*registered{}
	}
	return r
}

func (k ChannelKeys) values() [4]string {
	return [4]string{k.SessionID, k.Subject, k.Rule, k.Credential}
}

// Add registers ch under k and returns its id, unique in the registry
// ("1", "2", ...): the id the admin API shows.
func (r *Registry) Add(ch LiveChannel, k ChannelKeys) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	id := r.next
	e := &registered{ch: ch, keys: k}
	r.byID[id] = e
	for i, v := range k.values() {
		if v == "" {
			continue
		}
		m := r.index[i][v]
		if m == nil {
			m = map[uint64]*registered{}
			r.index[i][v] = m
		}
		m[id] = e
	}
	return strconv.FormatUint(id, 10)
}

// Remove unregisters the channel with the id Add returned; an unknown id
// is ignored.
func (r *Registry) Remove(id string) {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byID[n]
	if !ok {
		return
	}
	delete(r.byID, n)
	for i, v := range e.keys.values() {
		if v == "" {
			continue
		}
		if m := r.index[i][v]; m != nil {
			delete(m, n)
			if len(m) == 0 {
				delete(r.index[i], v)
			}
		}
	}
}

// Len returns the number of registered channels.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}

// Select returns the channels matching s, in the order they were added.
func (r *Registry) Select(s Selector) []LiveChannel {
	ids := r.selectIDs(s)
	out := make([]LiveChannel, 0, len(ids))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range ids {
		if e, ok := r.byID[id]; ok {
			out = append(out, e.ch)
		}
	}
	return out
}

// Describe returns what the channels matching s say of themselves, with
// their registry ids, in the order they were added.
func (r *Registry) Describe(s Selector) []ChannelInfo {
	ids := r.selectIDs(s)
	out := make([]ChannelInfo, 0, len(ids))
	for _, id := range ids {
		r.mu.Lock()
		e, ok := r.byID[id]
		r.mu.Unlock()
		if !ok {
			continue // ended meanwhile
		}
		info := e.ch.Describe()
		info.ID = strconv.FormatUint(id, 10)
		out = append(out, info)
	}
	return out
}

// selectIDs returns the ids of the channels matching s, sorted.
func (r *Registry) selectIDs(s Selector) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	want := [4]string{s.SessionID, s.Subject, s.Rule, s.Credential}
	// Walk the smallest index named, check the other keys on each entry.
	from := r.byID
	for i, v := range want {
		if v == "" {
			continue
		}
		m := r.index[i][v]
		if len(m) == 0 {
			return nil
		}
		if len(m) < len(from) {
			from = m
		}
	}
	ids := make([]uint64, 0, len(from))
	for id, e := range from {
		if matches(e.keys, want) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func matches(k ChannelKeys, want [4]string) bool {
	have := k.values()
	for i, v := range want {
		if v != "" && have[i] != v {
			return false
		}
	}
	return true
}

// Revoke ends every channel matching s with reason and returns how many
// were told to close. A zero Selector revokes nothing (it would close every
// channel of the process). Revoke does not wait: the channels a [Server]
// opened end in one batch per server ([Server.endAll]: every client's
// Close frame first, then the rest of each close, none waiting for
// another's frame in flight), on a goroutine of their own; any other
// channel is told on a goroutine of its own.
func (r *Registry) Revoke(s Selector, reason string) int {
	if s.IsZero() {
		return 0
	}
	chs := r.Select(s)
	if len(chs) > 0 {
		go revokeAll(chs, reason)
	}
	return len(chs)
}

// revokeAll ends chs for reason, a batch for each server's channels.
func revokeAll(chs []LiveChannel, reason string) {
	c := revokeCause(reason)
	var owners []*Server
	batches := map[*Server][]ending{}
	for _, ch := range chs {
		e, ok := ch.(ender)
		if !ok {
			go ch.Revoke(reason)
			continue
		}
		o := e.bound().owner
		if _, seen := batches[o]; !seen {
			owners = append(owners, o)
		}
		batches[o] = append(batches[o], ending{ch: e, c: c})
	}
	for _, o := range owners {
		o.endAll(batches[o])
	}
}
