package proctest

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill the child when the test process dies,
// so an interrupted test run leaves no server behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
