package registry

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPackageLayers: the packages the architecture names import no more of
// the module than it allows them (production files; tests may import
// more). The shared types depend on nothing of ours, the stage packages
// and the channel server only on them (and the infrastructure under
// internal/), so a handler never reaches the rule set or the proxy, and
// the tunnel never reaches the rule set it is handed through pipeline.
func TestPackageLayers(t *testing.T) {
	const module = "github.com/portcullis-proxy/portcullis/"
	infra := []string{"pipeline", "internal/fetch", "internal/jwks", "internal/ttlcache"}
	allowed := map[string][]string{
		"pipeline":       nil,
		"proxy/tunnel":   {"pipeline"},
		"errorhandlers":  {"pipeline"},
		"authenticators": infra,
		"authorizers":    infra,
		"mutators":       infra,
		"rules":          {"pipeline", "internal/fetch", "internal/docsyntax", "internal/yamlpos"},
	}
	root := filepath.Join("..", "..")
	for pkg, ok := range allowed {
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", pkg, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			parsed, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range parsed.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				own, found := strings.CutPrefix(path, module)
				if !found {
					continue
				}
				if !slices.Contains(ok, own) {
					rel, _ := filepath.Rel(root, f)
					t.Errorf("%s imports %s; %s may import only %v of the module", rel, own, pkg, ok)
				}
			}
		}
	}
}
