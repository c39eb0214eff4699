package testredis

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the server die with the test binary, so a crashed or
// interrupted test run leaves no redis-server behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
