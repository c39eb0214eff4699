package main

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes a child die with the harness, so an interrupted run
// leaves no Caddy, upstream or redis-server behind.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
