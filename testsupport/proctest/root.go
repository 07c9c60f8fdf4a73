package proctest

import (
	"os"
	"path/filepath"
	"runtime"
)

// RepoRoot returns the repository's top directory, the one holding go.mod,
// found by walking up from this source file ("." when there is none).
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "."
	}
	for dir := filepath.Dir(file); ; {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "."
		}
		dir = parent
	}
}

// BinDir is where scripts/build-kratos.sh, scripts/build-oathkeeper.sh and
// scripts/build-traefik.sh put what they build: <repo>/.build/bin.
func BinDir() string { return filepath.Join(RepoRoot(), ".build", "bin") }
