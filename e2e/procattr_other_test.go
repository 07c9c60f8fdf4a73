//go:build !linux

package e2e

import "os/exec"

// setProcAttr has nothing to add outside Linux.
func setProcAttr(*exec.Cmd) {}
