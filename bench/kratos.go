package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/portcullis-proxy/portcullis/testsupport/kratostest"
)

// ensureKratos builds Ory Kratos with scripts/build-kratos.sh when the
// binary is missing (a few minutes the first time).
func ensureKratos(root string) error {
	if st, err := os.Stat(kratostest.BinaryPath()); err == nil && !st.IsDir() {
		return nil
	}
	fmt.Fprintln(os.Stderr, "bench: building Ory Kratos (scripts/build-kratos.sh)")
	cmd := exec.Command(filepath.Join(root, "scripts", "build-kratos.sh"))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}
