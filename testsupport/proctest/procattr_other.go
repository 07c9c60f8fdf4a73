//go:build !linux

package proctest

import "os/exec"

// setProcAttr has nothing to add outside Linux.
func setProcAttr(*exec.Cmd) {}
