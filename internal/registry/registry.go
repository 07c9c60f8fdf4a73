// Package registry is the one list of the handlers portcullis knows, by
// the names configuration and rules use. Registration is explicit here, not
// spread over init functions.
package registry

import (
	"github.com/portcullis-proxy/portcullis/authenticators"
	"github.com/portcullis-proxy/portcullis/authorizers"
	"github.com/portcullis-proxy/portcullis/errorhandlers"
	"github.com/portcullis-proxy/portcullis/mutators"
	"github.com/portcullis-proxy/portcullis/pipeline"
)

// NewCatalog returns every handler portcullis knows, by the name rules and
// configuration use. This list is the one place handlers are registered.
func NewCatalog() *pipeline.Catalog {
	return &pipeline.Catalog{
		Authenticators: pipeline.NewSet("authenticator", map[string]pipeline.Factory[pipeline.Authenticator]{
			"noop":                 authenticators.NewNoop,
			"anonymous":            authenticators.NewAnonymous,
			"unauthorized":         authenticators.NewUnauthorized,
			"jwt":                  authenticators.NewJWT,
			"oauth2_introspection": authenticators.NewOAuth2Introspection,
			"cookie_session":       authenticators.NewCookieSession,
			"bearer_token":         authenticators.NewBearerToken,
		}),
		Authorizers: pipeline.NewSet("authorizer", map[string]pipeline.Factory[pipeline.Authorizer]{
			"allow":       authorizers.NewAllow,
			"deny":        authorizers.NewDeny,
			"ladon":       authorizers.NewLadon,
			"remote":      authorizers.NewRemote,
			"remote_json": authorizers.NewRemoteJSON,
		}),
		Mutators: pipeline.NewSet("mutator", map[string]pipeline.Factory[pipeline.Mutator]{
			"noop":     mutators.NewNoop,
			"header":   mutators.NewHeader,
			"cookie":   mutators.NewCookie,
			"id_token": mutators.NewIDToken,
			"hydrator": mutators.NewHydrator,
		}),
		ErrorHandlers: pipeline.NewSet("error handler", map[string]pipeline.Factory[pipeline.ErrorHandler]{
			"json":             errorhandlers.NewJSON,
			"redirect":         errorhandlers.NewRedirect,
			"www_authenticate": errorhandlers.NewWWWAuthenticate,
		}),
	}
}

// HandlerNames lists the known names per configuration block, for
// environment overrides.
func HandlerNames(c *pipeline.Catalog) map[string][]string {
	return map[string][]string{
		"authenticators":  c.Authenticators.Names(),
		"authorizers":     c.Authorizers.Names(),
		"mutators":        c.Mutators.Names(),
		"errors.handlers": c.ErrorHandlers.Names(),
	}
}
