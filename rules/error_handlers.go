package rules

import (
	"encoding/json"
	"net/http"

	"github.com/portcullis-proxy/portcullis/pipeline"
)

// errorHandler is one of a rule's error handlers, or a fallback one, with
// the `when` list that chooses it, compiled once when the rules load.
type errorHandler struct {
	when pipeline.Whens
	pipeline.ErrorHandler
}

// errorHandler builds the named error handler for a rule whose config for
// it is cfg (nil for a fallback handler). Its `when` list
// ([pipeline.WhenKey]) is the rule config's when that has one, even empty
// or null, else the global config's; it is decoded strictly and compiled
// here, and the rest of the config configures the handler. An empty list
// answers every error.
func (c *Compiler) errorHandler(name string, cfg json.RawMessage) (errorHandler, error) {
	rest, when, present, err := pipeline.CutKey(cfg, pipeline.WhenKey)
	if err != nil {
		return errorHandler{}, &pipeline.HandlerError{Kind: pipeline.KindErrorHandler, Name: name, Err: err}
	}
	h, err := c.Catalog.ErrorHandlers.Build(name, rest)
	if err != nil {
		return errorHandler{}, err
	}
	if !present {
		when = c.Catalog.ErrorHandlers.GlobalWhen(name)
	}
	ws, err := compileWhen(when)
	if err != nil {
		return errorHandler{}, &pipeline.HandlerError{Kind: pipeline.KindErrorHandler, Name: name, Err: err}
	}
	return errorHandler{when: ws, ErrorHandler: h}, nil
}

// compileWhen decodes a `when` list strictly (an unknown key or a wrong
// type is an error naming it, as for the rest of a handler's config) and
// compiles it.
func compileWhen(raw json.RawMessage) (pipeline.Whens, error) {
	if len(raw) == 0 {
		return pipeline.Whens{}, nil
	}
	var c struct {
		When []pipeline.When `json:"when"`
	}
	doc := append(append([]byte(`{"`+pipeline.WhenKey+`":`), raw...), '}')
	if err := pipeline.DecodeStrict(doc, &c); err != nil {
		return pipeline.Whens{}, err
	}
	return pipeline.CompileWhens(c.When)
}

// pickHandler returns the first of hs whose `when` matches err for r; nil
// when none does.
func pickHandler(hs []errorHandler, r *http.Request, err error) pipeline.ErrorHandler {
	for _, h := range hs {
		if h.when.Matches(r, err) {
			return h.ErrorHandler
		}
	}
	return nil
}
