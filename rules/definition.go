package rules

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"hash"
	"slices"
	"strconv"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// A rule's definition is what a rules reload compares to decide whether a
// live channel (a WebSocket tunnel, a governed stream) opened under the rule
// is still under the same rule. It is computed once, when the rule
// compiles, in three parts that are compared separately:
//
//   - match: the matching strategy, match.url and the set of match.methods;
//   - pipeline: the authenticators and the mutators in order, and the
//     upstream (url, preserve_host, strip_path);
//   - authorizer: the authorizer;
//
// each handler by its name and its effective configuration: the rule's
// config merged over the handler's global config (see
// [Compiler.GlobalConfig]), so that a configuration reload that changes
// authorizers.remote_json.config changes every rule using remote_json. The
// resolved policy (the websocket block over the configuration's) is the
// fourth part, compared field by field ([WebSocketPolicy.Equal]).
//
// Not part of the definition: where the rule is written (file, line, order),
// description, version, error handlers and revoke_session_on_success. None
// of them bears on a channel that is open already.
type definition struct {
	match, pipeline, authorizer [sha256.Size]byte
}

// definitionWriter hashes the parts of a definition, each field
// length-prefixed so that no two definitions share an encoding.
type definitionWriter struct{ h hash.Hash }

func newDefinitionWriter() definitionWriter { return definitionWriter{sha256.New()} }

func (w definitionWriter) str(s string) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(s)))
	w.h.Write(n[:])
	w.h.Write([]byte(s))
}

func (w definitionWriter) sum() (out [sha256.Size]byte) {
	copy(out[:], w.h.Sum(nil))
	return out
}

// handler writes one handler: its name and its effective configuration in
// canonical form (keys sorted, as encoding/json writes maps). A config that
// does not merge (the rule then fails closed anyway) is written as given.
func (c *Compiler) writeHandler(w definitionWriter, k pipeline.Kind, h Handler) {
	w.str(h.Handler)
	var global json.RawMessage
	if c.GlobalConfig != nil {
		global = c.GlobalConfig(k, h.Handler)
	}
	merged, err := pipeline.MergeConfig(global, h.Config)
	if err != nil {
		w.str("unmerged")
		w.str(string(global))
		w.str(string(h.Config))
		return
	}
	w.str(string(merged))
}

// definitionOf computes r's definition.
func (c *Compiler) definitionOf(r Rule) definition {
	var d definition

	m := newDefinitionWriter()
	m.str(string(c.Strategy))
	m.str(r.Match.URL)
	methods := slices.Clone(r.Match.Methods)
	slices.Sort(methods)
	for _, x := range slices.Compact(methods) {
		m.str(x)
	}
	d.match = m.sum()

	p := newDefinitionWriter()
	p.str("authenticators")
	for _, h := range r.Authenticators {
		c.writeHandler(p, pipeline.KindAuthenticator, h)
	}
	p.str("mutators")
	for _, h := range r.Mutators {
		c.writeHandler(p, pipeline.KindMutator, h)
	}
	p.str("upstream")
	p.str(r.Upstream.URL)
	p.str(r.Upstream.StripPath)
	p.str(strconv.FormatBool(r.Upstream.PreserveHost))
	d.pipeline = p.sum()

	a := newDefinitionWriter()
	c.writeHandler(a, pipeline.KindAuthorizer, r.Authorizer)
	d.authorizer = a.sum()
	return d
}
