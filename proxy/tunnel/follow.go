package tunnel

import (
	"time"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// FollowRules re-evaluates every open tunnel and stream that was opened
// under a compiled rule ([Request.Rule], [StreamRequest.Rule]) against set,
// the rule set that has just replaced the one they were opened under (a
// rules repository change, a configuration reload), as
// [pipeline.ChannelRules.Reevaluate] decides:
//
//   - the rule is unchanged: the channel stays as it is, under set's copy
//     of the rule (whose handlers re-authorize it from now on);
//   - the channel's request now selects no rule, another rule, or the
//     rule with other authenticators, mutators or upstream: it closes with
//     1008 "rule changed";
//   - the rule's policy changed: the new limits apply from now — max
//     lifetime counted from the channel's start (one already past closes it
//     at once, "max lifetime reached"), session binding, idle timeout,
//     re-check interval and re-authorization, unavailability, close grace,
//     the final event;
//   - the rule's authorizer changed: the channel is re-checked at once with
//     the new authorizer, one re-check per session however many of its
//     channels changed; a channel that cannot be re-authorized (its rule
//     does not re-authorize, or it is not re-checked) closes with "rule
//     changed".
//
// Channels opened without a compiled rule are left alone. A channel that
// registers while FollowRules runs, or after it, admitted by the rule set
// set replaces (the rules repository calls FollowRules just before set
// serves), is re-evaluated as it registers. FollowRules returns once every
// channel was re-evaluated; closes and re-checks run on. Calls must not
// overlap (the rules repository serialises its reloads).
func (t *Server) FollowRules(set pipeline.ChannelRules) {
	// Stored before the channels are listed: one registering after the
	// list is taken finds it (see catchUp).
	t.followed.Store(&followedRules{set})
	t.mu.Lock()
	members := make([]recheckMember, 0, len(t.live)+len(t.streams))
	for tun := range t.live {
		members = append(members, tun)
	}
	for s := range t.streams {
		members = append(members, s)
	}
	t.mu.Unlock()

	now := time.Now()
	var (
		ends    []ending
		recheck []recheckMember
	)
	for _, m := range members {
		c, again := t.follow(m, set, now)
		switch {
		case c != nil:
			ends = append(ends, ending{ch: m, c: c})
		case again:
			recheck = append(recheck, m)
		}
	}
	t.endAll(ends)
	t.checks.recheckNow(recheck)
}

// followedRules holds the rule set the last FollowRules was given.
type followedRules struct{ set pipeline.ChannelRules }

// catchUp re-evaluates a channel that has just registered against the
// rule set the last FollowRules was given: it may have been admitted by
// the set that one replaces. Under an unchanged rule (the usual case) it
// costs a lookup.
func (t *Server) catchUp(m recheckMember) {
	f := t.followed.Load()
	if f == nil {
		return
	}
	switch c, again := t.follow(m, f.set, time.Now()); {
	case c != nil:
		t.endAll([]ending{{ch: m, c: c}})
	case again:
		t.checks.recheckNow([]recheckMember{m})
	}
}

// follow applies what set means for m (see [binding.followLocked]): it
// returns the cause to end m for, or whether m must be re-checked at once.
func (t *Server) follow(m recheckMember, set pipeline.ChannelRules, now time.Time) (c *closeCause, recheckNow bool) {
	var out followed
	c = settle(m, func(b *binding) *closeCause {
		var c *closeCause
		out, c = b.followLocked(set, now)
		return c
	})
	if c == nil && out.regroup {
		t.checks.leave(m)
		if out.rechecked {
			t.checks.join(m)
		}
	}
	return c, c == nil && out.recheckNow
}

// followed is what a rules reload changed for a channel that stays.
type followed struct {
	// regroup: the channel's re-check interval or participation changed;
	// rechecked: it takes part in re-checks now.
	regroup, rechecked bool
	// recheckNow: its authorizer changed, it must be decided again at once.
	recheckNow bool
}

// followLocked applies what set means for the channel (see
// [Server.FollowRules]) and returns the cause to end it for, nil to keep
// it. b.mu is held and the channel is not ending.
func (b *binding) followLocked(set pipeline.ChannelRules, now time.Time) (followed, *closeCause) {
	var out followed
	old := b.hold.compiled
	if old == nil {
		return out, nil
	}
	ev := set.Reevaluate(old, b.hold.admission)
	if ev.Rule == nil {
		return out, &causeRuleChanged
	}
	b.hold.compiled = ev.Rule
	if ev.PolicyChanged {
		was, wasEvery := b.rechecksLocked(), b.policy().RevalidateEvery
		p := ev.Rule.Policy()
		b.pol.Store(p)
		b.maxAt, b.expiresAt = time.Time{}, time.Time{}
		if p.MaxLifetime > 0 {
			b.maxAt = b.start.Add(p.MaxLifetime)
		}
		if p.BindToSession {
			b.expiresAt = b.sessionExp
		}
		if c, _ := b.dueLocked(now); c != nil {
			return out, c
		}
		out.rechecked = b.rechecksLocked()
		out.regroup = out.rechecked != was || p.RevalidateEvery != wasEvery
		if p.Reauthorize && !b.hold.admission.Reauthorizable() {
			// Re-authorization was turned on for a channel that kept no
			// request to decide on.
			return out, &causeRuleChanged
		}
	}
	if ev.AuthorizerChanged {
		if !b.reauthorizesLocked() || !b.rechecksLocked() {
			return out, &causeRuleChanged
		}
		out.recheckNow = true
	}
	return out, nil
}
