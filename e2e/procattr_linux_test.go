package e2e

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill the child when the test binary dies, so
// an interrupted run leaves no server behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
