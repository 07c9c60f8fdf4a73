// Package registry is the one list of the handlers portcullis knows, by
// the names configuration and rules use. Registration is explicit here, not
// spread over init functions: the configuration's handler keys, the
// environment overrides, the schemas' handler lists, `rules validate`'s
// "every handler enabled" and the catalog internal/app serves with are all
// derived from [Handlers].
package registry

import (
	"fmt"

	"github.com/portcullis-proxy/portcullis/authenticators"
	"github.com/portcullis-proxy/portcullis/authorizers"
	"github.com/portcullis-proxy/portcullis/errorhandlers"
	"github.com/portcullis-proxy/portcullis/mutators"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// Handlers is every handler portcullis knows: kind (the stage interface its
// factory returns), name, config struct and factory, one line each, in the
// order the schemas list them. Adding a handler is adding its line here.
func Handlers() []pipeline.Handler {
	return []pipeline.Handler{
		pipeline.Typed("noop", authenticators.NewNoop),
		pipeline.Typed("anonymous", authenticators.NewAnonymous),
		pipeline.Typed("unauthorized", authenticators.NewUnauthorized),
		pipeline.Typed("cookie_session", authenticators.NewCookieSession),
		pipeline.Typed("bearer_token", authenticators.NewBearerToken),
		pipeline.Shared("jwt", authenticators.NewJWT),
		pipeline.Shared("oauth2_introspection", authenticators.NewOAuth2Introspection),

		pipeline.Typed("allow", authorizers.NewAllow),
		pipeline.Typed("deny", authorizers.NewDeny),
		pipeline.Shared("ladon", authorizers.NewLadon),
		pipeline.Typed("remote", authorizers.NewRemote),
		pipeline.Typed("remote_json", authorizers.NewRemoteJSON),

		pipeline.Typed("noop", mutators.NewNoop),
		pipeline.Typed("header", mutators.NewHeader),
		pipeline.Typed("cookie", mutators.NewCookie),
		pipeline.Shared("id_token", mutators.NewIDToken),
		pipeline.Typed("hydrator", mutators.NewHydrator),

		pipeline.Typed("json", errorhandlers.NewJSON),
		pipeline.Typed("redirect", errorhandlers.NewRedirect),
		pipeline.Typed("www_authenticate", errorhandlers.NewWWWAuthenticate),
	}
}

// NewCatalog returns a catalog of [Handlers], none enabled.
func NewCatalog() *pipeline.Catalog {
	c, err := pipeline.NewCatalog(Handlers())
	if err != nil {
		// Handlers is fixed at build time and its test builds it: an
		// error here is a programming error, not a configuration one.
		panic(fmt.Sprintf("registry: %v", err))
	}
	return c
}

// HandlerNames lists the known names per configuration block
// ([pipeline.Kind.ConfigKey]), for environment overrides.
func HandlerNames(c *pipeline.Catalog) map[string][]string {
	out := map[string][]string{}
	for _, k := range pipeline.Kinds() {
		out[k.ConfigKey()] = c.Names(k)
	}
	return out
}
