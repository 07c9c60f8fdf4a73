// Package configtest loads configuration files in tests as `portcullis
// serve` does: with the names of every handler the registry has, so that
// environment variables address their keys. It is imported only by _test
// files.
package configtest

import (
	"testing"

	"github.com/portcullis-proxy/portcullis/config"
	"github.com/portcullis-proxy/portcullis/internal/registry"
)

// Names maps each handler kind to the names of every handler portcullis
// has, as [config.Load] takes them.
func Names() map[string][]string {
	return registry.HandlerNames(registry.NewCatalog())
}

// Load loads the configuration file at path with env (os.Environ() form)
// as the environment, and fails tb when it does not load.
func Load(tb testing.TB, path string, env ...string) *config.Config {
	tb.Helper()
	c, err := config.Load(path, env, Names())
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
