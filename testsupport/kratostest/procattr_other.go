//go:build !linux

package kratostest

import "os/exec"

// setProcAttr has nothing to add outside Linux.
func setProcAttr(*exec.Cmd) {}
